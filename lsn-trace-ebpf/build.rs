use which::which;

/// The eBPF object is linked by bpf-linker, a dependency cargo cannot see: rebuild when
/// it changes (see aya-template). `cargo xtask setup` installs it.
fn main() {
    match which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found ({err}); run `cargo xtask setup`"),
    }
}
