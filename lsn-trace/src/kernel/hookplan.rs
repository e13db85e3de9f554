//! Which kernel functions the kernel-function backends (fentry, kprobe) hook on the running
//! kernel, decided once, here, from its BTF: the programs get the answer (attach points, and
//! the few facts in [`KfuncConfig`]) and stay free of version checks.
//!
//! * bind: `inet_bind`, `inet6_bind`, `unix_bind` — `(struct socket *, struct sockaddr *,
//!   int)` on every kernel with BTF.
//! * listen: `inet_listen`, `unix_listen` — `(struct socket *, int)` — and
//!   `sock_no_listen`, the listen of every socket type that cannot listen (UDP, raw,
//!   netlink …): listen(2) on one fails there with EOPNOTSUPP, a mistake worth reporting.
//! * setsockopt, one function per level, the first the kernel has with the expected shape
//!   `(sk, int level, int optname, sockptr_t optval, unsigned int optlen)`:
//!   SOL_SOCKET `sk_setsockopt(struct sock *)` (6.0+), else `sock_setsockopt(struct socket
//!   *)`; SOL_IP `do_ip_setsockopt`, else `ip_setsockopt`; SOL_IPV6 `do_ipv6_setsockopt`,
//!   else `ipv6_setsockopt` (the `do_` ones may be inlined away, then absent from BTF).
//!   `sockptr_t` (5.9+) carries a user or a kernel pointer; its `is_kernel` bit tells which.
//! * the syscall layer, where every bind(2), listen(2) and setsockopt(2) passes, 32-bit ones
//!   (ia32, socketcall(2)) too, before anything can refuse them: `__sys_bind(int fd,
//!   struct sockaddr __user *, int)`, `__sys_listen(int fd, int)`, `__sys_setsockopt(int fd,
//!   int, int, char __user *, int)` (4.17+; through 6.12 at least: on 6.11+ they call
//!   `__sys_bind_socket`/`__sys_listen_socket`, which io_uring calls too — so those are not
//!   hooked). The LSM hooks (`security_socket_bind`/`_listen`: SELinux, AppArmor, Landlock)
//!   run inside them, as do the fd lookup and the sockaddr copy (EBADF, ENOTSOCK, EFAULT,
//!   EINVAL). A call they report is not reported again by the protocol hooks
//!   (`KfuncConfig::syscall_hooks`), which keep io_uring's and the kernel's own calls.
//! * seccomp: a filter's errno (SECCOMP_RET_ERRNO …) skips the syscall function altogether;
//!   `__secure_computing(const struct seccomp_data *)` returning -1 is that skip. It runs for
//!   every syscall of a task under a seccomp filter (and only of those).
use anyhow::{Result, bail};
use lsn_trace_common::{
    KfuncConfig, SYSCALL_HOOK_BIND, SYSCALL_HOOK_LISTEN, SYSCALL_HOOK_SETSOCKOPT,
};

use crate::btf::Btf;

/// Which program serves a hooked function (program names in lsn-trace-ebpf's hooks/fentry.rs and
/// hooks/kprobe.rs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Bind,
    Listen,
    SockoptSocket,
    SockoptIp,
    SockoptIpv6,
    /// The syscall layer: `__sys_bind`, `__sys_listen`, `__sys_setsockopt`.
    SysBind,
    SysListen,
    SysSetsockopt,
    /// `__secure_computing`.
    Seccomp,
}

#[derive(Debug)]
pub struct Plan {
    pub config: KfuncConfig,
    /// (role, kernel function) to hook.
    pub hooks: Vec<(Role, &'static str)>,
    /// What this kernel lacks, for the user: the events that go unreported.
    pub notes: Vec<String>,
    /// The kernel runs 32-bit (ia32) programs (CONFIG_IA32_EMULATION: it has the ia32
    /// syscall entry points), whose calls the syscall tracepoints skip.
    pub ia32: bool,
    /// BTF id of `inet_bind`, to ask cheaply whether fentry loads at all before loading the
    /// whole object (see `probe::fentry`).
    pub probe_func_id: u32,
}

/// (function, the struct its first argument points to), in order of preference.
type Candidates = &'static [(&'static str, &'static str)];

const SETSOCKOPT: &[(Role, &str, Candidates)] = &[
    (
        Role::SockoptSocket,
        "SOL_SOCKET",
        &[("sk_setsockopt", "sock"), ("sock_setsockopt", "socket")],
    ),
    (
        Role::SockoptIp,
        "SOL_IP",
        &[("do_ip_setsockopt", "sock"), ("ip_setsockopt", "sock")],
    ),
    (
        Role::SockoptIpv6,
        "SOL_IPV6",
        &[("do_ipv6_setsockopt", "sock"), ("ipv6_setsockopt", "sock")],
    ),
];

/// Decide the hooks for the kernel described by `btf`.
pub fn plan(btf: &Btf) -> Result<Plan> {
    let mut plan = Plan {
        config: KfuncConfig::default(),
        hooks: Vec::new(),
        notes: Vec::new(),
        ia32: btf.func_id("__ia32_sys_bind").is_some(),
        probe_func_id: btf.func_id("inet_bind").unwrap_or(0),
    };
    let takes = |f: &str, first: &[(&str, usize)]| -> bool {
        btf.func_params(f).is_some_and(|p| {
            first.iter().all(|&(name, i)| {
                p.get(i)
                    .and_then(|&t| btf.pointee_name(t))
                    .is_some_and(|n| n == name)
            })
        })
    };
    for (role, f, required) in [
        (Role::Bind, "inet_bind", true),
        (Role::Bind, "inet6_bind", true),
        (Role::Bind, "unix_bind", false),
        (Role::Listen, "inet_listen", true),
        (Role::Listen, "unix_listen", false),
        (Role::Listen, "sock_no_listen", false),
    ] {
        if takes(f, &[("socket", 0)]) {
            plan.hooks.push((role, f));
        } else if required {
            bail!("kernel function {f}(struct socket *, ...) not found in BTF");
        } else {
            plan.notes
                .push(format!("{f} not in BTF: its calls go unreported"));
        }
    }

    let mut kernel_bit = None;
    for &(role, level, candidates) in SETSOCKOPT {
        let found = candidates.iter().find_map(|&(f, first)| {
            let bit = sockptr_shape(btf, f)?;
            takes(f, &[(first, 0)]).then_some((f, first, bit))
        });
        let Some((f, first, bit)) = found else {
            plan.notes.push(format!(
                "no {level} setsockopt function of the expected shape in BTF (tried {}): \
                 those options go unreported",
                candidates
                    .iter()
                    .map(|c| c.0)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
            continue;
        };
        if role == Role::SockoptSocket {
            plan.config.sol_socket_takes_socket = u8::from(first == "socket");
        }
        if kernel_bit.is_some_and(|b| b != bit) {
            bail!("sockptr_t.is_kernel at different bits in different functions");
        }
        kernel_bit = Some(bit);
        plan.hooks.push((role, f));
    }
    plan.config.sockptr_kernel_bit = kernel_bit.unwrap_or(0);

    let ints = |f: &str, pointer_at: Option<usize>, n: usize| -> bool {
        btf.func_params(f).is_some_and(|p| {
            p.len() == n
                && p.iter().enumerate().all(|(i, &t)| {
                    btf.size_of(t) == Some(if Some(i) == pointer_at { 8 } else { 4 })
                })
        })
    };
    for (role, f, bit, shape) in [
        (
            Role::SysBind,
            "__sys_bind",
            SYSCALL_HOOK_BIND,
            ints("__sys_bind", Some(1), 3),
        ),
        (
            Role::SysListen,
            "__sys_listen",
            SYSCALL_HOOK_LISTEN,
            ints("__sys_listen", None, 2),
        ),
        (
            Role::SysSetsockopt,
            "__sys_setsockopt",
            SYSCALL_HOOK_SETSOCKOPT,
            ints("__sys_setsockopt", Some(3), 5),
        ),
        (
            Role::Seccomp,
            "__secure_computing",
            0,
            takes("__secure_computing", &[("seccomp_data", 0)]),
        ),
    ] {
        if shape {
            plan.hooks.push((role, f));
            plan.config.syscall_hooks |= bit;
        } else {
            plan.notes.push(format!(
                "{f} not in BTF with the expected arguments: {}",
                match role {
                    Role::Seccomp => "calls refused by a seccomp filter go unreported",
                    _ =>
                        "those syscalls are seen only where their protocol's function is \
                         hooked, and not when refused before it (EBADF, EFAULT, an LSM …)",
                }
            ));
        }
    }
    Ok(plan)
}

/// For `(sk, int, int, sockptr_t, unsigned int)`: the bit of `sockptr_t.is_kernel` in the
/// second 8-byte half of the 16-byte sockptr_t (passed as two argument slots).
fn sockptr_shape(btf: &Btf, f: &str) -> Option<u8> {
    let p = btf.func_params(f)?;
    if p.len() != 5 || btf.type_name(p[3])? != "sockptr_t" || btf.size_of(p[3])? != 16 {
        return None;
    }
    let [level, optname, optlen] = [p[1], p[2], p[4]].map(|t| btf.size_of(t));
    if [level, optname, optlen] != [Some(4); 3] {
        return None;
    }
    let m = btf.member(p[3], "is_kernel")?;
    let bit = m.bit_offset.checked_sub(64)?;
    u8::try_from(bit).ok().filter(|&b| b < 64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::btf::{TypeId, kind, tests::Blob};

    /// A kernel's functions, as BTF: `socket`/`sock` structs, `sockptr_t`, and each
    /// (name, params) where a param is "socket", "sock", "sockaddr", "int", "uint",
    /// "sockptr_t" or "char *".
    fn kernel(funcs: &[(&str, &[&str])]) -> Btf {
        let mut b = Blob::default();
        let int = b.int("int", 4, 32, 0);
        let uint = b.int("unsigned int", 4, 32, 0);
        let char_ = b.int("char", 1, 8, 0);
        let bool_ = b.int("_Bool", 1, 8, 0);
        let ptr = |b: &mut Blob, to: TypeId| b.add("", kind::PTR, false, 0, to, &[]);
        let socket = b.structure("socket", 8, &[]);
        let sock = b.structure("sock", 8, &[]);
        let sockaddr = b.structure("sockaddr", 16, &[]);
        let seccomp_data = b.structure("seccomp_data", 64, &[]);
        let union = b.add("", kind::UNION, false, 0, 8, &[]);
        // struct { union { void *kernel; void *user; }; bool is_kernel : 1; }
        let anon = b.structure("", 16, &[("", union, 0, 0), ("is_kernel", bool_, 64, 1)]);
        let sockptr = b.add("sockptr_t", kind::TYPEDEF, false, 0, anon, &[]);
        let (p_socket, p_sock, p_sockaddr, p_char, p_seccomp) = (
            ptr(&mut b, socket),
            ptr(&mut b, sock),
            ptr(&mut b, sockaddr),
            ptr(&mut b, char_),
            ptr(&mut b, seccomp_data),
        );
        for (name, params) in funcs {
            let words: Vec<u32> = params
                .iter()
                .flat_map(|p| {
                    let ty = match *p {
                        "socket" => p_socket,
                        "sock" => p_sock,
                        "sockaddr" => p_sockaddr,
                        "int" => int,
                        "uint" => uint,
                        "sockptr_t" => sockptr,
                        "char *" => p_char,
                        "seccomp_data" => p_seccomp,
                        other => panic!("{other}"),
                    };
                    [0, ty]
                })
                .collect();
            let proto = b.add(
                "",
                kind::FUNC_PROTO,
                false,
                params.len() as u32,
                int,
                &words,
            );
            b.add(name, kind::FUNC, false, 0, proto, &[]);
        }
        Btf::parse(&b.finish()).unwrap()
    }

    const BIND: &[&str] = &["socket", "sockaddr", "int"];
    const LISTEN: &[&str] = &["socket", "int"];
    const SOCKOPT_SK: &[&str] = &["sock", "int", "int", "sockptr_t", "uint"];
    const SOCKOPT_SOCKET: &[&str] = &["socket", "int", "int", "sockptr_t", "uint"];
    /// The syscall layer and seccomp, as every kernel since 4.17 has them.
    const SYSCALL_LAYER: [(&str, &[&str]); 4] = [
        ("__sys_bind", &["int", "sockaddr", "int"]),
        ("__sys_listen", &["int", "int"]),
        ("__sys_setsockopt", &["int", "int", "int", "char *", "int"]),
        ("__secure_computing", &["seccomp_data"]),
    ];
    const SYSCALL_HOOKS: [(Role, &str); 4] = [
        (Role::SysBind, "__sys_bind"),
        (Role::SysListen, "__sys_listen"),
        (Role::SysSetsockopt, "__sys_setsockopt"),
        (Role::Seccomp, "__secure_computing"),
    ];

    /// 6.0+: sk_setsockopt(struct sock *), the do_ functions out of line.
    #[test]
    fn newer_kernel() {
        let mut funcs = SYSCALL_LAYER.to_vec();
        funcs.extend_from_slice(&[
            ("inet_bind", BIND),
            ("inet6_bind", BIND),
            ("unix_bind", BIND),
            ("inet_listen", LISTEN),
            ("unix_listen", LISTEN),
            ("sock_no_listen", LISTEN),
            ("sock_setsockopt", SOCKOPT_SOCKET),
            ("sk_setsockopt", SOCKOPT_SK),
            ("ip_setsockopt", SOCKOPT_SK),
            ("do_ip_setsockopt", SOCKOPT_SK),
            ("do_ipv6_setsockopt", SOCKOPT_SK),
        ]);
        let p = plan(&kernel(&funcs)).unwrap();
        assert_eq!(p.hooks, modern_hooks());
        assert_eq!(p.config.syscall_hooks, 0b111);
        assert_eq!(p.config.sol_socket_takes_socket, 0);
        assert_eq!(p.config.sockptr_kernel_bit, 0);
        assert!(p.notes.is_empty(), "{:?}", p.notes);
    }

    /// 5.9–5.19: only sock_setsockopt(struct socket *); do_ip_setsockopt inlined away;
    /// no unix_listen in BTF; IPv6's function with a pre-sockptr signature. And no syscall
    /// layer in BTF: the protocol hooks then report syscalls too.
    #[test]
    fn older_kernel() {
        let btf = kernel(&[
            ("inet_bind", BIND),
            ("inet6_bind", BIND),
            ("unix_bind", BIND),
            ("inet_listen", LISTEN),
            ("sock_no_listen", LISTEN),
            ("sock_setsockopt", SOCKOPT_SOCKET),
            ("ip_setsockopt", SOCKOPT_SK),
            ("ipv6_setsockopt", &["sock", "int", "int", "char *", "uint"]),
        ]);
        let p = plan(&btf).unwrap();
        assert_eq!(
            p.hooks,
            [
                (Role::Bind, "inet_bind"),
                (Role::Bind, "inet6_bind"),
                (Role::Bind, "unix_bind"),
                (Role::Listen, "inet_listen"),
                (Role::Listen, "sock_no_listen"),
                (Role::SockoptSocket, "sock_setsockopt"),
                (Role::SockoptIp, "ip_setsockopt"),
            ]
        );
        assert_eq!(p.config.sol_socket_takes_socket, 1);
        assert_eq!(p.config.syscall_hooks, 0);
        assert_eq!(p.notes.len(), 6, "{:?}", p.notes);
        assert!(p.notes[0].starts_with("unix_listen not in BTF"));
        assert!(p.notes[1].starts_with("no SOL_IPV6 setsockopt function"));
        assert_eq!(
            p.notes[2],
            "__sys_bind not in BTF with the expected arguments: those syscalls are seen only \
             where their protocol's function is hooked, and not when refused before it \
             (EBADF, EFAULT, an LSM …)"
        );
        assert_eq!(
            p.notes[5],
            "__secure_computing not in BTF with the expected arguments: calls refused by a \
             seccomp filter go unreported"
        );
    }

    #[test]
    fn without_inet_bind_there_is_no_plan() {
        let btf = kernel(&[("inet6_bind", BIND), ("inet_listen", LISTEN)]);
        let e = plan(&btf).unwrap_err().to_string();
        assert_eq!(
            e,
            "kernel function inet_bind(struct socket *, ...) not found in BTF"
        );
    }

    /// The plan for a kernel that has every function in its modern shape.
    fn modern_hooks() -> Vec<(Role, &'static str)> {
        [&MODERN_HOOKS[..], &SYSCALL_HOOKS[..]].concat()
    }

    const MODERN_HOOKS: [(Role, &str); 9] = [
        (Role::Bind, "inet_bind"),
        (Role::Bind, "inet6_bind"),
        (Role::Bind, "unix_bind"),
        (Role::Listen, "inet_listen"),
        (Role::Listen, "unix_listen"),
        (Role::Listen, "sock_no_listen"),
        (Role::SockoptSocket, "sk_setsockopt"),
        (Role::SockoptIp, "do_ip_setsockopt"),
        (Role::SockoptIpv6, "do_ipv6_setsockopt"),
    ];

    /// Debian's 6.1 and 6.12 (the VM matrix's kernels, BTF fixtures): every function is
    /// hooked, none goes unreported.
    #[test]
    fn debian_kernels_plan() {
        for (xz, raw) in crate::btf::tests::debian_fixtures() {
            let p = plan(&Btf::parse(&raw).unwrap()).unwrap();
            assert_eq!(p.hooks, modern_hooks(), "{}", xz.display());
            assert_eq!(p.config.syscall_hooks, 0b111);
            assert!(p.notes.is_empty(), "{}: {:?}", xz.display(), p.notes);
            assert_eq!(p.config.sol_socket_takes_socket, 0);
            assert_eq!(p.config.sockptr_kernel_bit, 0);
        }
    }

    /// The running kernel's BTF (every kernel lsn-trace supports has these functions).
    #[test]
    fn host_kernel_plan() {
        let Ok(btf) = Btf::from_sys() else {
            eprintln!("skipped: no kernel BTF");
            return;
        };
        let plan = plan(&btf).unwrap();
        for f in ["inet_bind", "inet6_bind", "inet_listen"] {
            assert!(plan.hooks.iter().any(|h| h.1 == f), "{f}: {plan:?}");
        }
        let roles: Vec<Role> = plan.hooks.iter().map(|h| h.0).collect();
        for r in [Role::SockoptSocket, Role::SockoptIp, Role::SockoptIpv6] {
            assert!(roles.contains(&r), "{r:?}: {plan:?}");
        }
        // sockptr_t { union { void *kernel; void __user *user; }; bool is_kernel : 1; }
        assert_eq!(plan.config.sockptr_kernel_bit, 0);
    }
}
