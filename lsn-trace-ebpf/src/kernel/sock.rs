//! A `struct sock` and the `struct socket` around it: the fields that decide how it listens,
//! read once per event (`SockView`, `read_sock`), and the MPTCP and unix specifics.
use aya_ebpf::helpers::bpf_probe_read_kernel;
use lsn_trace_common::*;

use super::{fields::*, task::Caller};
use crate::maps::{OFFSETS, SCRATCH_GEN_AT, SOCK_SCRATCH, SOCKET_AT};

/// A unix socket's bound address: (kernel pointer to its sockaddr_un, length).
#[inline(always)]
pub fn unix_address(sk: u64) -> Option<(u64, u64)> {
    let name = off!(unix_address_name);
    if !name.is_known() {
        return None;
    }
    let addr = read_ptr(sk, off!(unix_sock_addr))?;
    let len = read(addr, off!(unix_address_len))?;
    Some((addr + name.offset as u64, len))
}

/// `socket->sk` and the socket's inode number (0 = unknown) from a `struct socket *`
/// (`struct socket` heads a `struct socket_alloc`, whose inode follows it): two loads
/// through the pointer cast to that, else one read of the window the agent found holding
/// both, else one read each — the inode then left to `read_sock`, which finds it from the
/// sock.
#[inline(always)]
pub fn socket_sk_ino(socket: u64) -> Option<(u64, u64)> {
    if let Some(s) = Typed::cast(socket, btf_id!(btf_socket_alloc)) {
        let sk = s.ptr(off!(socket_sk))?;
        return Some((sk.addr(), s.scalar(off!(socket_ino)).unwrap_or(0)));
    }
    let start = unsafe { core::ptr::read_volatile(&raw const OFFSETS.socket_window_start) };
    let len = unsafe { core::ptr::read_volatile(&raw const OFFSETS.socket_window_len) };
    if socket != 0
        && len != 0
        && let Some(scratch) = Scratch::claim()
    {
        let win = unsafe { scratch.buf.add(SOCKET_AT) };
        let n = bounded(len as u64, SOCKET_WINDOW as u64);
        let r = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                win as *mut _,
                n,
                (socket + start as u64) as *const _,
            )
        };
        if r == 0 {
            let at = |f: Field| {
                let rel = (f.offset.wrapping_sub(start)) as usize & (SOCKET_WINDOW - 1);
                f.extract(unsafe { load8(win, rel) })
            };
            let (sk, ino) = (at(off!(socket_sk)), at(off!(socket_ino)));
            if scratch.intact() {
                return if sk == 0 { None } else { Some((sk, ino)) };
            }
        }
    }
    Some((read_ptr(socket, off!(socket_sk))?, 0))
}

/// `sk->sk_socket`: the `struct socket *` a sock belongs to (None when unknown or none).
#[inline(always)]
pub fn sock_socket(sk: u64) -> Option<u64> {
    read_ptr(sk, off!(sk_socket))
}

const IPPROTO_TCP: u64 = 6;
const IPPROTO_MPTCP: u64 = 262;

/// The MPTCP socket a TCP subflow belongs to (`tcp_sock.is_mptcp`, then its
/// `mptcp_subflow_context.conn`); None for any other TCP socket. Only for a TCP sock.
#[inline(always)]
fn mptcp_parent(sk: u64) -> Option<u64> {
    if read(sk, off!(tcp_is_mptcp))? == 0 {
        return None;
    }
    read_ptr(read_ptr(sk, off!(icsk_ulp_data))?, off!(subflow_conn))
}

/// The sock a listener's state change is reported for, one socket one story: a TCP
/// subflow's is its MPTCP socket's (the one bind and listen named, whose close it is);
/// None for an MPTCP socket's own change, which repeats its first subflow's where a kernel
/// traces it at all.
#[inline(always)]
pub fn listener_of(sk: u64) -> Option<u64> {
    match read(sk, off!(sk_protocol)) {
        Some(IPPROTO_MPTCP) => None,
        Some(IPPROTO_TCP) => Some(mptcp_parent(sk).unwrap_or(sk)),
        _ => Some(sk),
    }
}

/// An MPTCP listener's effective backlog: its first subflow's, the TCP socket that listens
/// (the MPTCP socket's own `sk_max_ack_backlog` stays 0).
#[inline(always)]
fn mptcp_backlog(sk: u64) -> Option<u64> {
    read(read_ptr(sk, off!(mptcp_first))?, off!(sk_max_ack_backlog))
}

/// net.core.somaxconn of the socket's network namespace.
#[inline(always)]
pub fn somaxconn(sk: u64) -> Option<u32> {
    let net = read_ptr(sk, off!(skc_net))?;
    read(net, off!(net_somaxconn)).map(|v| v as u32)
}

/// This CPU's `SOCK_SCRATCH`, claimed for one copy: its generation bumped, so that any
/// copy made into it after ours (by a program that took the CPU meanwhile) shows.
#[derive(Clone, Copy)]
pub struct Scratch {
    buf: *mut u8,
    generation: u64,
}

impl Scratch {
    #[inline(always)]
    fn claim() -> Option<Scratch> {
        let buf = SOCK_SCRATCH.get_ptr_mut(0)? as *mut u8;
        let at = unsafe { buf.add(SCRATCH_GEN_AT) } as *mut u64;
        let generation = unsafe { core::ptr::read_volatile(at) }.wrapping_add(1);
        unsafe { core::ptr::write_volatile(at, generation) };
        Some(Scratch { buf, generation })
    }

    /// Whether no copy replaced ours: asked after the last read of it (the empty asm keeps
    /// the compiler from moving those reads past the question).
    #[inline(always)]
    fn intact(&self) -> bool {
        unsafe { core::arch::asm!("", options(nostack, preserves_flags)) };
        let at = unsafe { self.buf.add(SCRATCH_GEN_AT) } as *const u64;
        unsafe { core::ptr::read_volatile(at) == self.generation }
    }
}

/// One `struct sock` to read fields of: where the kernel has `bpf_rdonly_cast`, the sock
/// itself as a typed pointer (plain loads, no copy); else its first `sock_span` bytes
/// copied with one helper call into per-CPU scratch, or, when the span is unknown or the
/// copy failed, the sock read field by field. Which of the first two is decided by the
/// offsets table, so a program verifies with one of them only (the verifier refuses one
/// load instruction serving two kinds of pointer). Programs on one CPU do not nest where a
/// copy is in use (bind, listen, setsockopt and a listener's state changes run in process
/// context).
pub struct SockView {
    sk: u64,
    /// The copy, or, where the kernel has the cast, the sock itself as a typed pointer (no
    /// copy needed); null = read from `sk`.
    copy: *const u8,
    /// The scratch the copy is in (`copy` non-null, no cast).
    scratch: Option<Scratch>,
}

impl SockView {
    /// The sock read field by field with the helper: what a view whose copy was replaced
    /// (`intact`) is read again with.
    #[inline(always)]
    pub fn direct(sk: u64) -> SockView {
        SockView {
            sk,
            copy: core::ptr::null(),
            scratch: None,
        }
    }

    /// Whether what was read from this view is the sock's: false when its copy was replaced
    /// before the last read (ask after it; then read again from `direct`).
    #[inline(always)]
    pub fn intact(&self) -> bool {
        match self.scratch {
            Some(s) if btf_id!(btf_sock) == 0 && !self.copy.is_null() => s.intact(),
            _ => true,
        }
    }

    #[inline(always)]
    pub fn load(sk: u64) -> SockView {
        let mut view = SockView::direct(sk);
        if let Some(typed) = Typed::cast(sk, btf_id!(btf_sock)) {
            view.copy = typed.0;
            return view;
        }
        let span = unsafe { core::ptr::read_volatile(&raw const OFFSETS.sock_span) } as u64;
        if sk == 0 || span == 0 || span > SOCK_SNAPSHOT as u64 {
            return view;
        }
        let Some(scratch) = Scratch::claim() else {
            return view;
        };
        let n = bounded(span, SOCK_SNAPSHOT as u64);
        let r = unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                scratch.buf as *mut _,
                n,
                sk as *const _,
            )
        };
        if r == 0 {
            view.copy = scratch.buf as *const u8;
            view.scratch = Some(scratch);
        }
        view
    }

    /// The field's value; None when unresolved or unreadable.
    #[inline(always)]
    pub fn get(&self, f: Field) -> Option<u64> {
        if self.copy.is_null() {
            return read(self.sk, f);
        }
        if !f.is_known() {
            return None;
        }
        if btf_id!(btf_sock) != 0 {
            return Typed(self.copy).scalar(f);
        }
        // One load of the field's size (every field, and every bitfield's load unit, is
        // aligned to its size: offsets.rs). The mask keeps the verifier's view of the offset
        // inside the scratch value (longer than any span); the agent only sets a span that
        // holds every field.
        let at = unsafe { self.copy.add(f.offset as usize & (SOCK_SNAPSHOT - 1)) };
        unsafe { load_field(at, f) }
    }

    #[inline(always)]
    pub fn get_ptr(&self, f: Field) -> Option<u64> {
        match self.get(f)? {
            0 => None,
            p => Some(p),
        }
    }

    /// `4 * N` bytes of an array field (an address: `__be32`, `struct in6_addr`, both
    /// 4-byte aligned) of exactly that size, as 32-bit words in memory order.
    #[inline(always)]
    pub fn words<const N: usize>(&self, f: Field) -> Option<[u32; N]> {
        if !f.is_known() {
            return None;
        }
        if self.copy.is_null() {
            return unsafe {
                bpf_probe_read_kernel((self.sk + f.offset as u64) as *const [u32; N])
            }
            .ok();
        }
        let at = if btf_id!(btf_sock) != 0 {
            unsafe { self.copy.add(f.offset as usize) }
        } else {
            unsafe { self.copy.add(f.offset as usize & (SOCK_SNAPSHOT - 1)) }
        } as *const u32;
        let mut w = [0u32; N];
        let mut i = 0;
        while i < N {
            w[i] = unsafe { *at.add(i) };
            i += 1;
        }
        Some(w)
    }
}

/// `inet_sock.inet_sport` in host order (0 when unknown): a closing listener's port, which
/// the kernel may have released from `skc_num` by the time its state changes.
#[inline(always)]
pub fn inet_sport(sk: &SockView) -> u16 {
    sk.get(off!(inet_sport))
        .map_or(0, |p| u16::from_be(p as u16))
}

/// The few socket fields the filters look at (see `filter::call_wanted`), without the
/// cost (and stack) of a whole `read_sock`. 0 = unknown for each.
#[derive(Clone, Copy, Default)]
pub struct SockKey {
    pub family: u16,
    pub sock_type: u16,
    pub protocol: u16,
    pub num: u16,
    pub netns: u32,
    pub type_known: bool,
    pub protocol_known: bool,
}

#[inline(always)]
pub fn sock_key(caller: &Caller, sk: &SockView) -> SockKey {
    let mut k = SockKey::default();
    if let Some(v) = sk.get(off!(skc_family)) {
        k.family = v as u16;
    }
    if let Some(v) = sk.get(off!(sk_type)) {
        k.sock_type = v as u16;
        k.type_known = true;
    }
    if let Some(v) = sk.get(off!(sk_protocol)) {
        k.protocol = v as u16;
        k.protocol_known = true;
    }
    if let Some(v) = sk.get(off!(skc_num)) {
        k.num = v as u16;
    }
    if let Some(net) = sk.get_ptr(off!(skc_net))
        && let Some(inum) = caller.netns_of(net)
    {
        k.netns = inum;
    }
    k
}

macro_rules! fill {
    ($st:ident, $sk:expr, $known:ident, $field:ident, $off:ident, $ty:ty) => {
        if let Some(v) = $sk.get(off!($off)) {
            $st.$field = v as $ty;
            $st.known |= $known;
        }
    };
}

/// Snapshot the fields of `struct sock` that decide how it listens. `ino`: the socket's
/// inode number when the caller already has it (0 = read it here).
#[inline(always)]
pub fn read_sock(caller: &Caller, sk: &SockView, ino: u64, st: &mut SockState) {
    fill!(st, sk, K_FAMILY, family, skc_family, u16);
    fill!(st, sk, K_TYPE, sock_type, sk_type, u16);
    fill!(st, sk, K_PROTOCOL, protocol, sk_protocol, u16);
    fill!(st, sk, K_STATE, state, skc_state, u8);
    fill!(st, sk, K_NUM, num, skc_num, u16);
    fill!(st, sk, K_V6ONLY, v6only, skc_ipv6only, u8);
    fill!(st, sk, K_REUSE, reuse, skc_reuse, u8);
    fill!(st, sk, K_REUSEPORT, reuseport, skc_reuseport, u8);
    fill!(st, sk, K_FREEBIND, freebind, inet_freebind, u8);
    fill!(st, sk, K_TRANSPARENT, transparent, inet_transparent, u8);
    fill!(st, sk, K_BIND_NO_PORT, bind_no_port, inet_bind_no_port, u8);
    fill!(st, sk, K_BOUND_DEV, bound_dev_if, skc_bound_dev_if, i32);
    fill!(st, sk, K_BACKLOG, max_ack_backlog, sk_max_ack_backlog, u32);
    if st.known & K_PROTOCOL != 0
        && st.protocol as u64 == IPPROTO_MPTCP
        && let Some(b) = mptcp_backlog(sk.sk)
    {
        st.max_ack_backlog = b as u32;
        st.known |= K_BACKLOG;
    }
    if let Some([a]) = sk.words::<1>(off!(skc_rcv_saddr)) {
        st.rcv_saddr = a.to_ne_bytes();
        st.known |= K_RCV_SADDR;
    }
    if let Some(a) = sk.words::<4>(off!(skc_v6_rcv_saddr)) {
        // Stored as the words were loaded, so the bytes land in memory order (aligned
        // stores: one each, where an unaligned one is four).
        const _: () = assert!(core::mem::offset_of!(SockState, v6_rcv_saddr) % 4 == 0);
        let dst = st.v6_rcv_saddr.as_mut_ptr() as *mut u32;
        let mut i = 0;
        while i < 4 {
            unsafe { *dst.add(i) = a[i] };
            i += 1;
        }
        st.known |= K_V6_RCV_SADDR;
    }
    if let Some(net) = sk.get_ptr(off!(skc_net))
        && let Some(inum) = caller.netns_of(net)
    {
        st.netns = inum;
        st.known |= K_NETNS;
    }
    // The inode number: the caller's, else the sock's own copy of it (6.16+, in the view:
    // no call), else through its socket.
    let ino = if ino != 0 {
        Some(ino)
    } else if let Some(ino) = sk.get(off!(sk_ino)).filter(|&i| i != 0) {
        Some(ino)
    } else if let Some(socket) = sk.get_ptr(off!(sk_socket)) {
        read(socket, off!(socket_ino))
    } else {
        None
    };
    if let Some(ino) = ino {
        st.ino = ino;
        st.known |= K_INO;
    }
}

/// `SOCKFS_MAGIC` (include/uapi/linux/magic.h): the superblock of every socket's file.
const SOCKFS_MAGIC: u64 = 0x534F_434B;

/// What a descriptor of the task names (`Caller::sock_from_fd`).
#[derive(Clone, Copy)]
pub enum FdFile {
    /// A socket: its `struct sock *` and inode number (0 = unknown).
    Socket(u64, u64),
    /// A file that is not on sockfs: no socket state to read.
    NotASocket,
    /// Not resolved (no such descriptor now, an unreadable pointer, a field unknown).
    Unresolved,
}

/// Whether `magic` (the file's superblock's, None = unknown) is sockfs's.
#[inline(always)]
fn on_sockfs(magic: Option<u64>) -> Option<bool> {
    Some(magic? == SOCKFS_MAGIC)
}

/// A task's descriptors lead to sockets: here, beside `socket_sk_ino`, so that task.rs
/// needs nothing of this module.
impl Caller {
    /// `files->fdt->fd[fd]`, and if its file is on sockfs (`f_inode->i_sb->s_magic`: only
    /// then is `private_data` a `struct socket`, whatever the call returned — setsockopt
    /// refuses a negative optlen before it looks at the descriptor) `private_data->sk`: the
    /// socket behind a descriptor of the task, with its inode number (`socket_sk_ino`).
    /// From the descriptor array on the pointers are untyped to the verifier (`struct file
    /// **` is no struct pointer, `private_data` a `void *`): cast back to their types where
    /// the kernel can (no call), else read with the helper.
    #[inline(always)]
    pub fn sock_from_fd(&self, fd: i32) -> FdFile {
        match self.fd_file(fd) {
            Some(f) => f,
            None => FdFile::Unresolved,
        }
    }

    #[inline(always)]
    fn fd_file(&self, fd: i32) -> Option<FdFile> {
        if fd < 0 {
            return None;
        }
        let fdt = self.task.ptr(off!(task_files))?.ptr(off!(files_fdt))?;
        if fd as u64 >= fdt.scalar(off!(fdt_max_fds))? {
            return None;
        }
        let fds = fdt.untyped_ptr(off!(fdt_fd))?;
        let slot = fds + fd as u64 * 8;
        // The slot read as `fd_array[0]` of a `files_struct` placed around it: a typed
        // `struct file *` without a helper call (`fd_array` itself only holds the first 64).
        let fd_array = off!(files_fd_array);
        let (socket, sockfs) = if let Some(files) = Typed::cast(
            slot.wrapping_sub(fd_array.offset as u64),
            btf_id!(btf_files_struct),
        ) {
            let file = files.ptr(fd_array)?;
            let magic = file
                .ptr(off!(file_f_inode))
                .and_then(|inode| inode.ptr(off!(inode_i_sb)))
                .and_then(|sb| sb.scalar(off!(sb_magic)));
            (file.untyped_ptr(off!(file_private_data)), on_sockfs(magic)?)
        } else {
            let file: u64 = unsafe { bpf_probe_read_kernel(slot as *const u64).ok()? };
            if file == 0 {
                return None;
            }
            let magic = read_ptr(file, off!(file_f_inode))
                .and_then(|inode| read_ptr(inode, off!(inode_i_sb)))
                .and_then(|sb| read(sb, off!(sb_magic)));
            (read_ptr(file, off!(file_private_data)), on_sockfs(magic)?)
        };
        if !sockfs {
            return Some(FdFile::NotASocket);
        }
        let (sk, ino) = socket_sk_ino(socket?)?;
        Some(FdFile::Socket(sk, ino))
    }
}
