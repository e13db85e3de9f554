//! The guest's kernel: Debian's newest `linux-image` of a series, fetched, unpacked and
//! cached with the modules the guest loads (decompressed, in dependency order).
use std::collections::{BTreeMap, BTreeSet};
use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{capture, run};

/// A kernel series the VM runner knows how to fetch: Debian package names are
/// `linux-image-{prefix}{N}{suffix}`, the newest N wins (which leaves out -rt, -cloud, -dbg
/// and -unsigned: their suffix differs).
pub struct Series {
    pub name: &'static str,
    prefix: &'static str,
    suffix: &'static str,
}

pub const SERIES: &[Series] = &[
    Series {
        name: "6.1",
        prefix: "linux-image-6.1.0-",
        suffix: "-amd64",
    },
    Series {
        name: "6.12",
        prefix: "linux-image-6.12.",
        suffix: "+deb12-amd64",
    },
];

/// Modules the guest loads at boot (their dependencies are read from each module's
/// .modinfo): virtio-pci (built in on 6.12) and 9p over virtio, to mount the host's root;
/// the sock_diag handlers (lsn-trace lists a namespace's sockets through NETLINK_SOCK_DIAG,
/// and the guest cannot modprobe: the host's /lib/modules has no modules of its kernel);
/// veth and dummy for tests that build network namespaces; sctp (a module in Debian's
/// kernels) for the SCTP listener tests, after crc32c_generic, the crypto module its
/// libcrc32c asks for by a soft dependency (modinfo `softdep`, which `depends=` omits).
const WANTED_MODULES: &[&str] = &[
    "virtio_pci",
    "9pnet_virtio",
    "9p",
    "tcp_diag",
    "udp_diag",
    "raw_diag",
    "unix_diag",
    "veth",
    "dummy",
    "crc32c_generic",
    "sctp",
];

/// The content of a cache entry's `ready` file: an entry made for another module list is
/// made again.
fn ready_key() -> String {
    WANTED_MODULES.join(",")
}

pub fn series(name: &str) -> Result<&'static Series> {
    SERIES.iter().find(|s| s.name == name).with_context(|| {
        let known: Vec<_> = SERIES.iter().map(|s| s.name).collect();
        format!(
            "unknown kernel {name:?}: the VM runner knows {}",
            known.join(", ")
        )
    })
}

/// The kernel cache: $LSN_TRACE_VM_CACHE, else $XDG_CACHE_HOME/lsn-trace/kernels, else
/// ~/.cache/lsn-trace/kernels.
fn cache_dir() -> Result<PathBuf> {
    if let Some(d) = env::var_os("LSN_TRACE_VM_CACHE") {
        return Ok(d.into());
    }
    let base = match env::var_os("XDG_CACHE_HOME") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env::var_os("HOME").context("HOME is not set")?).join(".cache"),
    };
    Ok(base.join("lsn-trace").join("kernels"))
}

/// A kernel ready to boot.
pub struct Kernel {
    /// The Debian package, e.g. `linux-image-6.1.0-56-amd64`.
    pub package: String,
    /// Its version, e.g. `6.1.192-2`.
    pub version: String,
    pub(super) vmlinuz: PathBuf,
    /// Decompressed modules, in load order.
    pub(super) modules: Vec<PathBuf>,
}

fn abi_number(s: &Series, package: &str) -> Option<u32> {
    package
        .strip_prefix(s.prefix)?
        .strip_suffix(s.suffix)?
        .parse()
        .ok()
}

/// The newest package of the series in apt's lists; else the newest already in the cache
/// (so a machine without apt lists still runs what it has).
fn newest_package(s: &Series) -> Result<String> {
    let listed =
        capture(Command::new("apt-cache").args(["pkgnames", s.prefix])).unwrap_or_default();
    let cached = fs::read_dir(cache_dir()?)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("ready").is_file())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let newest = |names: &mut dyn Iterator<Item = String>| {
        names
            .filter_map(|n| abi_number(s, &n).map(|abi| (abi, n)))
            .max()
            .map(|(_, n)| n)
    };
    newest(&mut listed.lines().map(str::to_owned))
        .or_else(|| newest(&mut cached.into_iter()))
        .with_context(|| {
            format!(
                "no {}N{} package in apt's lists: run `apt-get update` (Debian bookworm's \
                 archive has them)",
                s.prefix, s.suffix
            )
        })
}

/// Fetch (or find in the cache) the newest kernel of the series.
pub fn kernel(s: &Series) -> Result<Kernel> {
    let package = newest_package(s)?;
    let dir = cache_dir()?.join(&package);
    if fs::read_to_string(dir.join("ready")).ok() != Some(ready_key()) {
        if dir.exists() {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("could not remove the stale {}", dir.display()))?;
        }
        prepare(&package, &dir)?;
    }
    load_cached(&package, &dir)
}

fn load_cached(package: &str, dir: &Path) -> Result<Kernel> {
    let version = fs::read_to_string(dir.join("version"))?.trim().to_owned();
    let order = fs::read_to_string(dir.join("modules").join("order"))?;
    let modules = order
        .lines()
        .map(|m| dir.join("modules").join(format!("{m}.ko")))
        .collect();
    Ok(Kernel {
        package: package.to_owned(),
        version,
        vmlinuz: dir.join("vmlinuz"),
        modules,
    })
}

/// Download and unpack `package`, keep its vmlinuz and the 9p modules in `dir`.
fn prepare(package: &str, dir: &Path) -> Result<()> {
    let parent = dir.parent().context("cache dir has no parent")?;
    fs::create_dir_all(parent)
        .with_context(|| format!("could not create the kernel cache {}", parent.display()))?;
    // Built aside and renamed into place: an interrupted run leaves no half-made kernel.
    let tmp = parent.join(format!(".{package}.{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp)?;
    eprintln!(
        "vm: fetching {package} (apt-get download; cached in {})",
        parent.display()
    );
    run(Command::new("apt-get")
        .current_dir(&tmp)
        .args(["download", package]))?;
    let deb = fs::read_dir(&tmp)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .context("apt-get download left no .deb")?;
    let version = capture(
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&deb)
            .arg("Version"),
    )
    .context("dpkg-deb -f VERSION failed")?;
    let root = tmp.join("root");
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    let out = tmp.join("out");
    fs::create_dir_all(out.join("modules"))?;

    let vmlinuz = fs::read_dir(root.join("boot"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .context("the package has no boot/vmlinuz-*")?;
    fs::copy(&vmlinuz, out.join("vmlinuz"))?;

    let moddir = fs::read_dir(root.join("lib/modules"))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .next()
        .context("the package has no lib/modules/VERSION")?;
    let order = module_closure(&moddir, WANTED_MODULES)?;
    let mut names = String::new();
    for (name, bytes) in &order {
        fs::write(out.join("modules").join(format!("{name}.ko")), bytes)?;
        names.push_str(name);
        names.push('\n');
    }
    fs::write(out.join("modules").join("order"), names)?;
    fs::write(out.join("version"), version.trim())?;
    fs::write(out.join("ready"), ready_key())?;
    if dir.exists() {
        // Another run prepared it meanwhile.
        let _ = fs::remove_dir_all(&tmp);
        return Ok(());
    }
    fs::rename(&out, dir)?;
    let _ = fs::remove_dir_all(&tmp);
    eprintln!(
        "vm: {package} {} ready ({} modules: {})",
        version.trim(),
        order.len(),
        order
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    Ok(())
}

/// A module's name as the kernel knows it: the file name without `.ko[.xz|.zst|.gz]`,
/// dashes as underscores.
fn module_name(file: &str) -> Option<String> {
    let stem = file.split_once(".ko")?.0;
    Some(stem.replace('-', "_"))
}

/// The bytes of a module file, decompressed (busybox's insmod only takes plain .ko).
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let name = path.to_string_lossy();
    let tool = if name.ends_with(".xz") {
        Some("xz")
    } else if name.ends_with(".zst") {
        Some("zstd")
    } else if name.ends_with(".gz") {
        Some("gzip")
    } else {
        None
    };
    match tool {
        None => Ok(fs::read(path)?),
        Some(tool) => {
            let out = Command::new(tool)
                .arg("-dc")
                .arg(path)
                .stderr(Stdio::inherit())
                .output()
                .with_context(|| format!("could not run `{tool}` to decompress {name}"))?;
            if !out.status.success() {
                bail!("`{tool} -dc {name}` failed ({})", out.status);
            }
            Ok(out.stdout)
        }
    }
}

/// `depends=` from a module's .modinfo section (NUL-separated `key=value` strings).
fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(at) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[at + key.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|d| !d.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `wanted` and everything they depend on, dependencies first, as (name, plain .ko bytes);
/// modules built into the kernel (modules.builtin) are left out.
fn module_closure(moddir: &Path, wanted: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![moddir.join("kernel")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(n) = p
                .file_name()
                .and_then(|n| module_name(&n.to_string_lossy()))
            {
                files.insert(n, p);
            }
        }
    }
    let builtin: BTreeSet<String> = fs::read_to_string(moddir.join("modules.builtin"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| module_name(l.rsplit('/').next()?))
        .collect();

    fn visit(
        name: &str,
        files: &BTreeMap<String, PathBuf>,
        builtin: &BTreeSet<String>,
        done: &mut BTreeSet<String>,
        order: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<()> {
        if !done.insert(name.to_owned()) {
            return Ok(());
        }
        let Some(path) = files.get(name) else {
            if builtin.contains(name) {
                return Ok(());
            }
            bail!("module {name} is neither in the kernel package nor built in");
        };
        let bytes = read_module(path)?;
        for dep in modinfo_depends(&bytes) {
            visit(&dep, files, builtin, done, order)?;
        }
        order.push((name.to_owned(), bytes));
        Ok(())
    }
    let mut done = BTreeSet::new();
    let mut order = Vec::new();
    for w in wanted {
        visit(w, &files, &builtin, &mut done, &mut order)?;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_package_numbers_of_the_series_only() {
        let s61 = series("6.1").unwrap();
        let s612 = series("6.12").unwrap();
        assert_eq!(abi_number(s61, "linux-image-6.1.0-56-amd64"), Some(56));
        assert_eq!(abi_number(s61, "linux-image-6.1.0-56-rt-amd64"), None);
        assert_eq!(abi_number(s61, "linux-image-6.1.0-56-amd64-unsigned"), None);
        assert_eq!(abi_number(s61, "linux-image-6.1.0-56-cloud-amd64"), None);
        assert_eq!(
            abi_number(s612, "linux-image-6.12.117+deb12-amd64"),
            Some(117)
        );
        assert_eq!(
            abi_number(s612, "linux-image-6.12.117+deb12-amd64-dbg"),
            None
        );
        assert_eq!(abi_number(s612, "linux-image-6.12-amd64"), None);
    }

    #[test]
    fn module_names_and_depends() {
        assert_eq!(
            module_name("9pnet_virtio.ko.xz").as_deref(),
            Some("9pnet_virtio")
        );
        assert_eq!(module_name("virtio-rng.ko").as_deref(), Some("virtio_rng"));
        assert_eq!(module_name("modules.order"), None);
        let ko = b"\x7fELF...\0license=GPL\0depends=virtio,9pnet,virtio_ring\0name=x\0";
        assert_eq!(modinfo_depends(ko), ["virtio", "9pnet", "virtio_ring"]);
        assert!(modinfo_depends(b"\0depends=\0name=9pnet\0").is_empty());
    }
}
