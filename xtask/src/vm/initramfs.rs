//! The pieces of the guest's initramfs, which `run_in_vm` assembles: a cpio writer,
//! busybox-static, the init script that loads the modules, mounts the host's root and
//! runs the command script in it.
use std::fs;
use std::path::Path;

use anyhow::{Result, bail};

use super::Kernel;

/// Where the guest mounts the host's root before chrooting into it.
const GUEST_ROOT: &str = "/mnt/root";

/// A minimal newc ("070701") cpio archive writer: what the kernel unpacks as initramfs.
pub(super) struct Cpio {
    buf: Vec<u8>,
    ino: u32,
}

impl Cpio {
    pub(super) fn new() -> Cpio {
        Cpio {
            buf: Vec::new(),
            ino: 1,
        }
    }

    fn entry(&mut self, name: &str, mode: u32, data: &[u8], rdev: (u32, u32)) {
        let fields = [
            self.ino,
            mode,
            0,
            0,
            1,
            0,
            u32::try_from(data.len()).expect("initramfs file under 4 GiB"),
            0,
            0,
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).expect("short name"),
            0,
        ];
        self.ino += 1;
        self.buf.extend_from_slice(b"070701");
        for f in fields {
            self.buf.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.buf.extend_from_slice(name.as_bytes());
        self.buf.push(0);
        self.pad();
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }

    pub(super) fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, &[], (0, 0));
    }

    pub(super) fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, data, (0, 0));
    }

    pub(super) fn char_dev(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, &[], (major, minor));
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.entry("TRAILER!!!", 0, &[], (0, 0));
        self.buf
    }
}

/// The statically linked busybox of Debian's busybox-static.
pub(super) fn busybox() -> Result<Vec<u8>> {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if let Ok(bytes) = fs::read(p)
            && is_static_elf(&bytes)
        {
            return Ok(bytes);
        }
    }
    bail!("no statically linked busybox found: install busybox-static (cargo xtask setup --vm)")
}

/// Whether an ELF64 executable has no PT_INTERP (a dynamic one names its loader there, and
/// the initramfs has no loader).
fn is_static_elf(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let word = |o: usize| elf.get(o..o + 8).and_then(|b| b.try_into().ok());
    if !elf.starts_with(b"\x7fELF\x02") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (
        word(0x20).map(u64::from_le_bytes),
        u16_at(0x36),
        u16_at(0x38),
    ) else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = usize::try_from(phoff).unwrap_or(usize::MAX) + i * usize::from(phentsize);
        elf.get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) != PT_INTERP)
    })
}

/// Shell single-quoting.
pub(super) fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// /init of the guest: everything after it runs as pid 1 under busybox sh.
pub(super) fn init_script(kernel: &Kernel, results: &Path, marker: &str) -> String {
    let modules: Vec<String> = kernel
        .modules
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    let results = sh_quote(&results.to_string_lossy());
    let ws = sh_quote(&crate::cmd::workspace_root().to_string_lossy());
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() {{ echo "vm-init: $*"; echo; echo "{marker} 125"; poweroff -f; }}
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in {modules}; do insmod /modules/$m.ko || fail "insmod $m failed"; done
R={GUEST_ROOT}
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot $R \
  || fail "could not mount the host's root over 9p"
# The host's root is read-only: writable scratch where programs expect it. A checkout
# under the host's /tmp stays reachable: bound back into the guest's /tmp at its path.
WS={ws}
case "$WS" in /tmp/*) mkdir -p /host-tmp && mount --bind $R/tmp /host-tmp \
  || fail "could not keep the host's /tmp";; esac
mount -t tmpfs tmpfs $R/tmp
case "$WS" in /tmp/*) mkdir -p $R$WS && mount --bind /host-tmp${{WS#/tmp}} $R$WS \
  || fail "could not keep the checkout $WS, under /tmp, in the guest";; esac
OUT={results}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results $R$OUT \
  || fail "could not mount the results share at $OUT"
mount -t proc proc $R/proc
mount -t sysfs sysfs $R/sys
mount -t devtmpfs devtmpfs $R/dev
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs tmpfs $R/dev/shm
mount -t tmpfs tmpfs $R/run
mount -t tracefs tracefs $R/sys/kernel/tracing
mount -t debugfs debugfs $R/sys/kernel/debug
mount -t bpf bpf $R/sys/fs/bpf
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup
ip link set lo up
hostname lsn-trace-vm
# switch_root, not chroot: the host's root becomes the real root, so paths the kernel
# prints (/proc/PID/exe, seen from another mount namespace too) are the host's paths.
exec switch_root $R /bin/sh $OUT/guest.sh
fail "switch_root failed"
"#,
        modules = modules.join(" "),
    )
}

/// The command as a script the guest runs inside the chroot: same working directory (when
/// it exists there), the given environment.
pub(super) fn command_script(cwd: &Path, envs: &[(String, String)], command: &[String]) -> String {
    let mut s = String::from("cd ");
    s.push_str(&sh_quote(&cwd.to_string_lossy()));
    s.push_str(" 2>/dev/null || cd /\n");
    for (k, v) in envs {
        s.push_str(&format!("export {k}={}\n", sh_quote(v)));
    }
    s.push_str("exec");
    for w in command {
        s.push(' ');
        s.push_str(&sh_quote(w));
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_elf_check() {
        assert!(!is_static_elf(b"#!/bin/sh\n"));
        if let Ok(sh) = fs::read("/bin/sh") {
            // Debian's dash is dynamically linked.
            assert!(!is_static_elf(&sh));
        }
    }

    #[test]
    fn cpio_newc_layout() {
        let mut c = Cpio::new();
        c.file("init", 0o755, b"abc");
        let buf = c.finish();
        assert!(buf.starts_with(b"070701"));
        // 110-byte header + "init\0" padded to 116, then "abc" padded to 120.
        assert_eq!(&buf[110..115], b"init\0");
        assert_eq!(&buf[116..119], b"abc");
        assert_eq!(&buf[120..126], b"070701");
        assert!(buf.len().is_multiple_of(4));
    }
}
