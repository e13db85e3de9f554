//! The running kernel's struct layout, resolved from its BTF into the [`KernelOffsets`]
//! table the eBPF programs read kernel fields with.
//!
//! [`resolve`] fills every [`Field`] it can and names the rest in [`Resolved::missing`];
//! those stay [`Field::NONE`], so the programs report them unknown rather than read a guess.
//! A program loads `size` bytes at `base + offset` (little-endian) and applies
//! [`Field::from_sized_load`]; for a bitfield the load is the smallest aligned one of 1, 2, 4
//! or 8 bytes that covers its bits.
//!
//! Each field is named by its kernel path, `struct.member[.member]`, relative to a pointer to
//! that struct. `struct inet_sock` starts with its `struct sock`, so inet_sock fields are
//! relative to the same `struct sock *`.

use crate::btf::Btf;
use lsn_trace_common::{ExecOffsets, Field, KernelOffsets, TASK_COMM_LEN};

/// What [`resolve`] found.
pub struct Resolved {
    pub offsets: KernelOffsets,
    /// The BTF id of the kfunc `bpf_rdonly_cast` (6.2+), for the call the programs are built
    /// with; None = the kernel has none (the `btf_*` ids are then 0).
    pub cast_kfunc: Option<u32>,
    /// Kernel fields not found, or not readable as a [`Field`], by kernel path.
    pub missing: Vec<&'static str>,
}

impl Resolved {
    /// Read without `bpf_rdonly_cast` (the kernel refused it: `probe::rdonly_cast`).
    pub fn without_casts(self) -> Resolved {
        Resolved {
            offsets: self.offsets.without_casts(),
            cast_kfunc: None,
            ..self
        }
    }
}

/// Resolve every [`KernelOffsets`] field from `btf`.
pub fn resolve(btf: &Btf) -> Resolved {
    let mut r = Resolver {
        btf,
        missing: Vec::new(),
    };
    let offsets = KernelOffsets {
        task_files: r.scalar("task_struct.files"),
        files_fdt: r.scalar("files_struct.fdt"),
        fdt_max_fds: r.scalar("fdtable.max_fds"),
        fdt_fd: r.scalar("fdtable.fd"),
        file_private_data: r.scalar("file.private_data"),
        file_f_inode: r.scalar("file.f_inode"),
        inode_i_sb: r.scalar("inode.i_sb"),
        sb_magic: r.scalar("super_block.s_magic"),
        socket_type: r.scalar("socket.type"),
        socket_sk: r.scalar("socket.sk"),
        skc_family: r.scalar("sock.__sk_common.skc_family"),
        skc_state: r.scalar("sock.__sk_common.skc_state"),
        skc_num: r.scalar("sock.__sk_common.skc_num"),
        skc_rcv_saddr: r.bytes("sock.__sk_common.skc_rcv_saddr", 4),
        skc_v6_rcv_saddr: r.bytes("sock.__sk_common.skc_v6_rcv_saddr", 16),
        skc_reuse: r.scalar("sock.__sk_common.skc_reuse"),
        skc_reuseport: r.scalar("sock.__sk_common.skc_reuseport"),
        skc_ipv6only: r.scalar("sock.__sk_common.skc_ipv6only"),
        skc_bound_dev_if: r.scalar("sock.__sk_common.skc_bound_dev_if"),
        // possible_net_t wraps the pointer (and is empty without CONFIG_NET_NS).
        skc_net: r.scalar("sock.__sk_common.skc_net.net"),
        net_ns_inum: r.scalar("net.ns.inum"),
        sk_socket: r.scalar("sock.sk_socket"),
        // `struct socket` is the first member of `struct socket_alloc`: the same offset
        // applies from a `struct socket *`.
        socket_ino: if btf
            .composite("socket_alloc")
            .and_then(|t| btf.member(t, "socket"))
            .is_some_and(|m| m.bit_offset == 0)
        {
            r.scalar("socket_alloc.vfs_inode.i_ino")
        } else {
            r.missing.push("socket_alloc.socket at offset 0");
            Field::NONE
        },
        // u16 since 5.6, bitfields before: `scalar` takes either.
        sk_type: r.scalar("sock.sk_type"),
        sk_protocol: r.scalar("sock.sk_protocol"),
        sk_max_ack_backlog: r.scalar("sock.sk_max_ack_backlog"),
        inet_freebind: r.inet_flag("inet_sock.freebind", "INET_FLAGS_FREEBIND"),
        inet_transparent: r.inet_flag("inet_sock.transparent", "INET_FLAGS_TRANSPARENT"),
        inet_bind_no_port: r.inet_flag(
            "inet_sock.bind_address_no_port",
            "INET_FLAGS_BIND_ADDRESS_NO_PORT",
        ),
        inet_sport: r.inet_field("inet_sock.inet_sport"),
        // Since 6.16 only: not missing before, the programs read it through sk_socket.
        sk_ino: field(btf, "sock.sk_ino", Shape::Scalar).unwrap_or(Field::NONE),
        task_pid: r.scalar("task_struct.pid"),
        task_comm: r.bytes("task_struct.comm", TASK_COMM_LEN as u32),
        task_cred: r.scalar("task_struct.cred"),
        cred_uid: r.scalar("cred.uid.val"),
        cred_gid: r.scalar("cred.gid.val"),
        cred_euid: r.scalar("cred.euid.val"),
        task_real_parent: r.scalar("task_struct.real_parent"),
        task_group_leader: r.scalar("task_struct.group_leader"),
        task_start_boottime: r.scalar("task_struct.start_boottime"),
        task_tgid: r.scalar("task_struct.tgid"),
        task_nsproxy: r.scalar("task_struct.nsproxy"),
        nsproxy_net_ns: r.scalar("nsproxy.net_ns"),
        unix_sock_addr: r.scalar("unix_sock.addr"),
        unix_address_len: r.scalar("unix_address.len"),
        unix_address_name: r.array_start("unix_address.name"),
        task_flags: r.scalar("task_struct.flags"),
        pt_regs_orig_ax: r.scalar("pt_regs.orig_ax"),
        pt_regs_arg0: r.scalar("pt_regs.di"),
        pt_regs_arg1: r.scalar("pt_regs.si"),
        pt_regs_arg2: r.scalar("pt_regs.dx"),
        pt_regs_arg3: r.scalar("pt_regs.r10"),
        pt_regs_arg4: r.scalar("pt_regs.r8"),
        net_somaxconn: r.scalar("net.core.sysctl_somaxconn"),
        sock_span: 0,
        socket_window_start: 0,
        socket_window_len: 0,
        files_fd_array: r.pointer_slot("files_struct.fd_array"),
        btf_sock: 0,
        btf_socket_alloc: 0,
        btf_files_struct: 0,
        _pad: 0,
        task_ti_status: r.scalar("task_struct.thread_info.status"),
        pt_regs_bx: r.scalar("pt_regs.bx"),
        pt_regs_cx: r.scalar("pt_regs.cx"),
        pt_regs_ax: r.scalar("pt_regs.ax"),
        // Only with CONFIG_MPTCP: not missing without it (no MPTCP socket to read then).
        mptcp_first: field(btf, "mptcp_sock.first", Shape::Scalar).unwrap_or(Field::NONE),
        tcp_is_mptcp: field(btf, "tcp_sock.is_mptcp", Shape::Scalar).unwrap_or(Field::NONE),
        icsk_ulp_data: r.scalar("inet_connection_sock.icsk_ulp_data"),
        subflow_conn: field(btf, "mptcp_subflow_context.conn", Shape::Scalar)
            .unwrap_or(Field::NONE),
        task_signal: r.scalar("task_struct.signal"),
        signal_live: r.scalar("signal_struct.live.counter"),
    };
    let cast_kfunc = btf.func_id("bpf_rdonly_cast");
    // The cast is of use only with the fields read through it (its targets are structs).
    let cast_to = |name: &str, needed: bool| match cast_kfunc {
        Some(_) if needed => btf.composite(name).unwrap_or(0),
        _ => 0,
    };
    let offsets = KernelOffsets {
        // inet_sock, not sock: its flags and port are read through the `struct sock *` too
        // (`inet_field`), and the verifier allows no load past the end of the cast type.
        btf_sock: cast_to("inet_sock", r.sk_first()),
        btf_socket_alloc: cast_to("socket_alloc", offsets.socket_sk.is_known()),
        btf_files_struct: cast_to(
            "files_struct",
            offsets.files_fd_array.is_known() && offsets.file_private_data.is_known(),
        ),
        ..offsets
    };
    let (socket_window_start, socket_window_len) = offsets.socket_window_needed();
    let offsets = KernelOffsets {
        sock_span: offsets.sock_span_needed(),
        socket_window_start,
        socket_window_len,
        ..offsets
    };
    Resolved {
        offsets,
        cast_kfunc,
        missing: r.missing,
    }
}

// ---- Exec capture (issue 18) ------------------------------------------------------------

/// The [`ExecOffsets`] of `btf`, and the kernel paths not found (the exec capture is then
/// not attached: it would send nothing usable).
pub fn resolve_exec(btf: &Btf) -> (ExecOffsets, Vec<&'static str>) {
    let mut r = Resolver {
        btf,
        missing: Vec::new(),
    };
    // `struct mount` embeds the `struct vfsmount` a path points to: where, is all we need.
    let mount_mnt = btf
        .composite("mount")
        .and_then(|t| btf.member(t, "mnt"))
        .filter(|m| m.bit_offset % 8 == 0 && m.bitfield_size == 0)
        .and_then(|m| u16::try_from(m.bit_offset / 8).ok())
        .map(|off| Field::plain(off, 8));
    let offsets = ExecOffsets {
        task_mm: r.scalar("task_struct.mm"),
        mm_arg_start: r.scalar("mm_struct.arg_start"),
        mm_arg_end: r.scalar("mm_struct.arg_end"),
        mm_exe_file: r.scalar("mm_struct.exe_file"),
        file_path_mnt: r.scalar("file.f_path.mnt"),
        file_path_dentry: r.scalar("file.f_path.dentry"),
        dentry_parent: r.scalar("dentry.d_parent"),
        dentry_name: r.scalar("dentry.d_name.name"),
        vfsmount_root: r.scalar("vfsmount.mnt_root"),
        mount_mnt: r.found("mount.mnt", mount_mnt),
        mount_parent: r.scalar("mount.mnt_parent"),
        mount_mountpoint: r.scalar("mount.mnt_mountpoint"),
    };
    (offsets, r.missing)
}

#[cfg(test)]
mod exec_tests {
    use super::*;
    use crate::btf::tests::{debian_fixtures, host_btf};

    /// The host's kernel and Debian's 6.1 and 6.12 all have the fields, as 8-byte words.
    #[test]
    fn exec_fields_resolve() {
        let mut btfs: Vec<Btf> = debian_fixtures()
            .into_iter()
            .map(|(_, raw)| Btf::parse(&raw).unwrap())
            .collect();
        btfs.extend(host_btf());
        for btf in &btfs {
            let (o, missing) = resolve_exec(btf);
            assert!(missing.is_empty(), "{missing:?}");
            for f in o.fields() {
                assert_eq!((f.size, f.bit_len), (8, 0), "{o:?}");
            }
            assert_eq!(o.mm_arg_end.offset, o.mm_arg_start.offset + 8, "{o:?}");
        }
    }
}
// ---- end of the exec capture ------------------------------------------------------------

/// How a field is read.
#[derive(Clone, Copy)]
enum Shape {
    /// An integer or pointer of 1, 2, 4 or 8 bytes, or a bitfield.
    Scalar,
    /// A byte array (an address) of exactly this many bytes.
    Bytes(u32),
    /// Where a flexible array member begins (its size is not in the type: the program
    /// reads a length field). Marked known with size 1.
    ArrayStart,
    /// The first slot of an 8-aligned array of pointers, as an 8-byte field.
    PointerSlot,
}

struct Resolver<'a> {
    btf: &'a Btf,
    missing: Vec<&'static str>,
}

impl Resolver<'_> {
    fn scalar(&mut self, path: &'static str) -> Field {
        self.found(path, field(self.btf, path, Shape::Scalar))
    }

    fn bytes(&mut self, path: &'static str, len: u32) -> Field {
        self.found(path, field(self.btf, path, Shape::Bytes(len)))
    }

    /// The first slot of an array of pointers, as an 8-byte field.
    fn pointer_slot(&mut self, path: &'static str) -> Field {
        self.found(path, field(self.btf, path, Shape::PointerSlot))
    }

    fn array_start(&mut self, path: &'static str) -> Field {
        self.found(path, field(self.btf, path, Shape::ArrayStart))
    }

    /// Whether `struct inet_sock` starts with its `struct sock`: its fields are read through
    /// the `struct sock *`, which is only right while it does.
    fn sk_first(&self) -> bool {
        let btf = self.btf;
        btf.composite("inet_sock")
            .and_then(|t| btf.member(t, "sk"))
            .is_some_and(|m| m.bit_offset == 0)
    }

    /// A scalar of `struct inet_sock`, read through the `struct sock *`.
    fn inet_field(&mut self, path: &'static str) -> Field {
        let f = if self.sk_first() {
            field(self.btf, path, Shape::Scalar)
        } else {
            None
        };
        self.found(path, f)
    }

    /// Since 6.6 the inet_sock flags are bits of `inet_flags`, numbered by an enum; before,
    /// they were bitfield members named by `legacy_path`.
    fn inet_flag(&mut self, legacy_path: &'static str, bit_enumerator: &str) -> Field {
        let btf = self.btf;
        let f = if !self.sk_first() {
            None
        } else if let Some(flags) = field(btf, "inet_sock.inet_flags", Shape::Scalar) {
            flag_bit(flags, btf.enum_value(bit_enumerator))
        } else {
            field(btf, legacy_path, Shape::Scalar)
        };
        self.found(legacy_path, f)
    }

    fn found(&mut self, path: &'static str, field: Option<Field>) -> Field {
        field.unwrap_or_else(|| {
            self.missing.push(path);
            Field::NONE
        })
    }
}

/// Bit `bit` of the word `flags`.
fn flag_bit(flags: Field, bit: Option<i64>) -> Option<Field> {
    let bit = u8::try_from(bit?).ok()?;
    (flags.bit_len == 0 && bit < flags.size * 8)
        .then(|| Field::bits(flags.offset, flags.size, bit, 1))
}

/// The field at kernel path `path` (`struct.member[.member]`), if it has `shape`.
fn field(btf: &Btf, path: &str, shape: Shape) -> Option<Field> {
    let (ty, members) = path.split_once('.')?;
    let m = btf.member(btf.composite(ty)?, members)?;
    if m.bitfield_size > 0 {
        return match shape {
            Shape::Scalar => bitfield(m.bit_offset, m.bitfield_size),
            Shape::Bytes(_) | Shape::ArrayStart | Shape::PointerSlot => None,
        };
    }
    let size = btf.size_of(m.type_id)?;
    let (fits, size) = match shape {
        Shape::Scalar => (matches!(size, 1 | 2 | 4 | 8), size),
        Shape::Bytes(len) => (size == len, size),
        Shape::ArrayStart => (size == 0, 1),
        Shape::PointerSlot => (size >= 8 && size % 8 == 0 && m.bit_offset % 64 == 0, 8),
    };
    if !fits || m.bit_offset % 8 != 0 {
        return None;
    }
    Some(Field::plain(
        u16::try_from(m.bit_offset / 8).ok()?,
        size as u8,
    ))
}

/// The smallest aligned load of 1, 2, 4 or 8 bytes that holds bits
/// `bit_offset..bit_offset + len` (aligned: the programs load it with one instruction).
fn bitfield(bit_offset: u32, len: u32) -> Option<Field> {
    [1u32, 2, 4, 8].into_iter().find_map(|size| {
        let start = bit_offset / 8 / size * size;
        let shift = bit_offset - start * 8;
        (shift + len <= size * 8).then_some(Field::bits(
            u16::try_from(start).ok()?,
            size as u8,
            shift as u8,
            len as u8,
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::tests::{Blob, bpftool_raw, bpftool_raw_of, bpftool_struct, host_btf};

    #[test]
    fn host_kernel_resolves_every_field() {
        let Some(btf) = host_btf() else { return };
        every_field_resolves(&btf, bpftool_raw().as_deref());
    }

    /// The BTF of Debian's 6.1 and 6.12 kernels (captured by `cargo xtask vm`, xz-compressed
    /// in tests/fixtures/btf): every field resolves, at the offsets bpftool shows.
    #[test]
    fn debian_kernels_resolve_every_field() {
        for (xz, raw) in crate::btf::tests::debian_fixtures() {
            // bpftool reads a file: the decompressed BTF goes to one.
            let plain = std::env::temp_dir().join(format!(
                "lsn-trace-btf-{}-{}",
                std::process::id(),
                xz.file_stem().unwrap().to_string_lossy()
            ));
            std::fs::write(&plain, &raw).unwrap();
            let btf = Btf::parse(&raw).unwrap();
            eprintln!("{}", xz.display());
            // The VM tests run the programs both ways: 6.1 without the cast, 6.12 with it.
            let before_cast = xz.to_string_lossy().contains("vmlinux-6.1.");
            assert_eq!(btf.func_id("bpf_rdonly_cast").is_none(), before_cast);
            every_field_resolves(&btf, bpftool_raw_of(&plain.to_string_lossy()).as_deref());
            let _ = std::fs::remove_file(&plain);
        }
    }

    /// Every field of `btf` resolves; with `raw` (bpftool's raw dump of the same BTF), the
    /// offsets are bpftool's.
    fn every_field_resolves(btf: &Btf, raw: Option<&str>) {
        let Resolved {
            offsets: o,
            cast_kfunc,
            missing,
        } = resolve(btf);
        assert!(missing.is_empty(), "unresolved: {missing:?}");
        // bpf_rdonly_cast came with 6.2: where it is, every cast names its struct.
        let casts = [
            (o.btf_sock, "inet_sock"),
            (o.btf_socket_alloc, "socket_alloc"),
            (o.btf_files_struct, "files_struct"),
        ];
        for (id, name) in casts {
            match cast_kfunc {
                Some(_) => assert_eq!(btf.type_name(id).as_deref(), Some(name)),
                None => assert_eq!(id, 0, "{name}"),
            }
        }
        eprintln!("bpf_rdonly_cast: {cast_kfunc:?}");
        // A descriptor's slot read as `files_struct.fd_array[0]`.
        assert_eq!(o.files_fd_array.size, 8);
        // The programs copy the head of `struct sock` in one read: every sock field is in it.
        assert!(o.sock_span > 0, "sock fields span more than SOCK_SNAPSHOT");
        for f in o.sock_fields() {
            assert!(
                f.offset as u32 + f.size as u32 <= o.sock_span,
                "{f:?} {}",
                o.sock_span
            );
        }
        eprintln!("sock_span {}", o.sock_span);
        // `sk` and the inode number come with one read from a `struct socket *`.
        assert!(o.socket_window_len > 0, "{o:?}");
        for f in [o.socket_sk, o.socket_ino] {
            assert!(f.offset >= o.socket_window_start);
            assert!(f.offset + u16::from(f.size) <= o.socket_window_start + o.socket_window_len);
        }
        assert_eq!((o.task_pid.size, o.task_tgid.size), (4, 4));
        let pointers = [
            o.task_files,
            o.files_fdt,
            o.fdt_fd,
            o.file_private_data,
            o.file_f_inode,
            o.inode_i_sb,
            o.socket_sk,
            o.skc_net,
            o.sk_socket,
            o.task_real_parent,
            o.task_group_leader,
            o.task_nsproxy,
            o.nsproxy_net_ns,
            o.task_cred,
        ];
        for f in pointers {
            assert_eq!((f.size, f.bit_len), (8, 0), "{f:?}");
        }
        assert_eq!((o.skc_rcv_saddr.size, o.skc_v6_rcv_saddr.size), (4, 16));
        assert_eq!(o.task_comm.size as usize, TASK_COMM_LEN);
        assert_eq!((o.cred_uid.size, o.cred_gid.size), (4, 4));
        assert_eq!(o.cred_euid.size, 4);
        assert_eq!(o.sb_magic.size, 8);
        // struct unix_address { refcount_t refcnt; int len; struct sockaddr_un name[]; }
        assert_eq!((o.unix_address_len.offset, o.unix_address_len.size), (4, 4));
        assert_eq!(
            (o.unix_address_name.offset, o.unix_address_name.size),
            (8, 1)
        );
        assert_eq!((o.skc_reuse.size, o.skc_reuse.bit_len), (1, 4));
        assert_eq!((o.skc_reuseport.bit_len, o.skc_ipv6only.bit_len), (1, 1));

        // Bit positions against bpftool's dump, composed the way the kernel nests them.
        let Some(raw) = raw else {
            eprintln!("skipped comparison: bpftool not installed");
            return;
        };
        let bit = |s: &str, member: &str| {
            let (_, members) = bpftool_struct(raw, s);
            members
                .iter()
                .find(|m| m.0 == member)
                .unwrap_or_else(|| panic!("{s}.{member}"))
                .2
        };
        let at = |f: Field| u32::from(f.offset) * 8 + u32::from(f.bit_shift);
        let sk_common = bit("sock", "__sk_common");
        for (f, member) in [
            (o.skc_family, "skc_family"),
            (o.skc_state, "skc_state"),
            (o.skc_reuse, "skc_reuse"),
            (o.skc_reuseport, "skc_reuseport"),
            (o.skc_ipv6only, "skc_ipv6only"),
            (o.skc_bound_dev_if, "skc_bound_dev_if"),
            (o.skc_net, "skc_net"),
            (o.skc_v6_rcv_saddr, "skc_v6_rcv_saddr"),
        ] {
            assert_eq!(at(f), sk_common + bit("sock_common", member), "{member}");
        }
        for (f, member) in [
            (o.sk_type, "sk_type"),
            (o.sk_protocol, "sk_protocol"),
            (o.sk_max_ack_backlog, "sk_max_ack_backlog"),
        ] {
            assert_eq!(at(f), bit("sock", member), "{member}");
        }
        assert_eq!(
            at(o.net_ns_inum),
            bit("net", "ns") + bit("ns_common", "inum")
        );
        assert_eq!(at(o.task_tgid), bit("task_struct", "tgid"));
        assert_eq!(at(o.socket_sk), bit("socket", "sk"));
        for (f, member) in [
            (o.pt_regs_arg0, "di"),
            (o.pt_regs_arg1, "si"),
            (o.pt_regs_arg2, "dx"),
            (o.pt_regs_arg3, "r10"),
            (o.pt_regs_arg4, "r8"),
            (o.pt_regs_orig_ax, "orig_ax"),
        ] {
            assert_eq!((at(f), f.size), (bit("pt_regs", member), 8), "{member}");
        }
        // 6.6+: the inet_sock flags are bits of `inet_flags`.
        if btf
            .composite("inet_sock")
            .and_then(|t| btf.member(t, "inet_flags"))
            .is_some()
        {
            let flags = bit("inet_sock", "inet_flags");
            for (f, enumerator) in [
                (o.inet_freebind, "INET_FLAGS_FREEBIND"),
                (o.inet_transparent, "INET_FLAGS_TRANSPARENT"),
                (o.inet_bind_no_port, "INET_FLAGS_BIND_ADDRESS_NO_PORT"),
            ] {
                let n = btf.enum_value(enumerator).unwrap() as u32;
                assert_eq!(
                    (at(f), f.size, f.bit_len),
                    (flags + n, 8, 1),
                    "{enumerator}"
                );
            }
        } else {
            // Before 6.6 (Debian's 6.1): one-bit bitfields of inet_sock.
            for (f, member) in [
                (o.inet_freebind, "freebind"),
                (o.inet_transparent, "transparent"),
                (o.inet_bind_no_port, "bind_address_no_port"),
            ] {
                assert_eq!(
                    (at(f), f.bit_len),
                    (bit("inet_sock", member), 1),
                    "{member}"
                );
            }
        }
        // The pointers and scalars the fd -> socket walk and the caller's identity read.
        for (f, s, member) in [
            (o.task_files, "task_struct", "files"),
            (o.files_fdt, "files_struct", "fdt"),
            (o.fdt_max_fds, "fdtable", "max_fds"),
            (o.fdt_fd, "fdtable", "fd"),
            (o.file_private_data, "file", "private_data"),
            (o.socket_type, "socket", "type"),
            (o.task_real_parent, "task_struct", "real_parent"),
            (o.task_group_leader, "task_struct", "group_leader"),
            (o.task_start_boottime, "task_struct", "start_boottime"),
            (o.task_nsproxy, "task_struct", "nsproxy"),
            (o.nsproxy_net_ns, "nsproxy", "net_ns"),
            (o.task_comm, "task_struct", "comm"),
            (o.task_cred, "task_struct", "cred"),
        ] {
            assert_eq!(at(f), bit(s, member), "{s}.{member}");
        }
    }

    /// Layouts from before 5.6 (`sk_protocol`/`sk_type` bitfields) and 6.6 (inet_sock flag
    /// bitfields, here in the pre-kind_flag encoding).
    #[test]
    fn old_kernel_layout() {
        let mut b = Blob::default();
        let uchar = b.int("unsigned char", 1, 8, 0);
        let ushort = b.int("short unsigned int", 2, 16, 0);
        let uint = b.int("unsigned int", 4, 32, 0);
        let u8_bit = b.int("__u8", 1, 1, 0);
        let skc = b.structure(
            "sock_common",
            136,
            &[
                ("skc_family", ushort, 128, 0),
                ("skc_reuse", uchar, 152, 4),
                ("skc_reuseport", uchar, 156, 1),
                ("skc_ipv6only", uchar, 157, 1),
            ],
        );
        // 4.19: unsigned int sk_padding:1, sk_kern_sock:1, sk_no_check_tx:1,
        // sk_no_check_rx:1, sk_userlocks:4, sk_protocol:8, sk_type:16;  u16 sk_max_ack_backlog
        let sock = b.structure(
            "sock",
            760,
            &[
                ("__sk_common", skc, 0, 0),
                ("sk_userlocks", uint, 3204, 4),
                ("sk_protocol", uint, 3208, 8),
                ("sk_type", uint, 3216, 16),
                ("sk_max_ack_backlog", ushort, 3232, 0),
            ],
        );
        b.structure(
            "inet_sock",
            800,
            &[
                ("sk", sock, 0, 0),
                ("freebind", u8_bit, 6210, 0),
                ("transparent", u8_bit, 6213, 0),
                ("bind_address_no_port", u8_bit, 6216, 0),
                ("inet_sport", ushort, 6240, 0),
            ],
        );
        let btf = Btf::parse(&b.finish()).unwrap();
        let Resolved {
            offsets: o,
            missing,
            ..
        } = resolve(&btf);

        assert_eq!(o.skc_family, Field::plain(16, 2));
        assert_eq!(o.skc_reuse, Field::bits(19, 1, 0, 4));
        assert_eq!(o.skc_ipv6only, Field::bits(19, 1, 5, 1));
        assert_eq!(o.sk_protocol, Field::bits(401, 1, 0, 8));
        assert_eq!(o.sk_type, Field::bits(402, 2, 0, 16));
        assert_eq!(o.sk_max_ack_backlog, Field::plain(404, 2));
        assert_eq!(o.inet_freebind, Field::bits(776, 1, 2, 1));
        assert_eq!(o.inet_transparent, Field::bits(776, 1, 5, 1));
        assert_eq!(o.inet_bind_no_port, Field::bits(777, 1, 0, 1));
        assert_eq!(o.inet_sport, Field::plain(780, 2));
        assert!(missing.contains(&"task_struct.files"));
        assert!(missing.contains(&"net.ns.inum"));
        // the blob has no task/fd/unix structs: those are reported missing, not guessed
        assert!(missing.contains(&"unix_address.name"));
        assert_eq!(missing.len(), 50, "{missing:?}");
        // The copied head of `struct sock` reaches the furthest known field (inet_sport at
        // 780..782), rounded up to 8.
        assert_eq!(o.sock_span, 784);
    }

    /// `inet_flags` without the enum numbering its bits: unknown, not guessed from the old
    /// bitfields or a remembered value.
    #[test]
    fn inet_flags_without_enum() {
        let mut b = Blob::default();
        let ulong = b.int("long unsigned int", 8, 64, 0);
        let sock = b.structure("sock", 8, &[("sk_max_ack_backlog", ulong, 0, 0)]);
        b.structure(
            "inet_sock",
            16,
            &[("sk", sock, 0, 0), ("inet_flags", ulong, 64, 0)],
        );
        let btf = Btf::parse(&b.finish()).unwrap();
        let r = resolve(&btf);
        assert_eq!(r.offsets.inet_freebind, Field::NONE);
        assert!(r.missing.contains(&"inet_sock.freebind"));
        assert!(r.missing.contains(&"inet_sock.bind_address_no_port"));
    }

    /// Writes a value amid set or clear neighbouring bits, then reads it back the way the
    /// eBPF programs do: one aligned load of the unit's size.
    #[test]
    fn bitfield_loads_cover_their_bits() {
        assert_eq!(bitfield(7, 58), None, "no single load holds it");
        assert_eq!(bitfield(60, 8), None, "no aligned load holds it");
        for bit_offset in 0..128 {
            for len in 1..=57u32 {
                let fits = |size: u32| bit_offset % (size * 8) + len <= size * 8;
                let Some(f) = bitfield(bit_offset, len) else {
                    assert!(![1, 2, 4, 8].into_iter().any(fits), "{bit_offset} {len}");
                    continue;
                };
                // As the programs load it from the offsets table: one little-endian word.
                let word: u64 = unsafe { std::mem::transmute(f) };
                assert_eq!(Field::from_bits(u64::from_le(word)), f);
                let (size, offset) = (u32::from(f.size), usize::from(f.offset));
                let shift = u32::from(f.bit_shift);
                assert_eq!(offset as u32 * 8 + shift, bit_offset);
                assert!(matches!(size, 1 | 2 | 4 | 8), "{f:?}");
                assert_eq!(offset as u32 % size, 0, "unaligned: {f:?}");
                assert!(
                    size == 1 || !fits(size / 2),
                    "a smaller load would do: {f:?}"
                );
                let mask = (1u64 << len) - 1;
                for (noise, value) in [
                    (0x00, mask),
                    (0xff, 0),
                    (0x00, 0xa5a5_a5a5_a5a5_a5a5 & mask),
                ] {
                    let mut mem = [noise; 24];
                    for i in 0..len {
                        let bit = (bit_offset + i) as usize;
                        let (byte, b) = (bit / 8, 1 << (bit % 8));
                        if value >> i & 1 == 1 {
                            mem[byte] |= b
                        } else {
                            mem[byte] &= !b
                        }
                    }
                    let mut raw = [0; 8];
                    raw[..size as usize].copy_from_slice(&mem[offset..offset + size as usize]);
                    assert_eq!(f.from_sized_load(u64::from_le_bytes(raw)), value, "{f:?}");
                    // The socket window is read 8 bytes at a time, neighbours and all.
                    let wide: [u8; 8] = mem[offset..offset + 8].try_into().unwrap();
                    assert_eq!(f.extract(u64::from_le_bytes(wide)), value, "{f:?}");
                }
            }
        }
    }
}
