//! What a package ships beside the binary, generated from the clap definitions so they
//! cannot drift from the flags: a man page for `lsn-trace` and one per subcommand
//! (`lsn-trace-audit.1` …), and completions for bash, zsh and fish.
use std::path::Path;

use anyhow::{Context as _, Result};
use clap_complete::Shell;

/// Set to a directory, lsn-trace writes these there and exits (`cargo xtask dist`).
pub const ENV: &str = "LSN_TRACE_GENERATE_ASSETS";

/// Write `DIR/man/*.1` and `DIR/completions/{lsn-trace.bash,_lsn-trace,lsn-trace.fish}`.
pub fn generate(cmd: clap::Command, dir: &Path) -> Result<()> {
    let mut cmd = cmd;
    cmd.build();
    let man = dir.join("man");
    let completions = dir.join("completions");
    for d in [&man, &completions] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let name = cmd.get_name().to_owned();
    let version: &'static str = match cmd.get_version() {
        Some(v) => leak(v.to_owned()),
        None => env!("CARGO_PKG_VERSION"),
    };
    write_man(&cmd, &man.join(format!("{name}.1")))?;
    // Not clap's own `help` subcommand: `lsn-trace help X` is `lsn-trace X --help`.
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        let page = format!("{name}-{}", sub.get_name());
        let sub = sub.clone().name(leak(page.clone())).version(version);
        write_man(&sub, &man.join(format!("{page}.1")))?;
    }
    for (shell, file) in [
        (Shell::Bash, format!("{name}.bash")),
        (Shell::Zsh, format!("_{name}")),
        (Shell::Fish, format!("{name}.fish")),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, &name, &mut out);
        let path = completions.join(file);
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// clap takes `&'static str` names (without its `string` feature); this runs once per page.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn write_man(cmd: &clap::Command, path: &Path) -> Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .context("rendering a man page")?;
    std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_for_every_visible_subcommand_and_three_shells() {
        let dir = std::env::temp_dir().join(format!("lsn-assets-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let cmd = clap::Command::new("lsn-trace")
            .version("1.2.3")
            .arg(clap::arg!(--json "JSON Lines"))
            .subcommand(clap::Command::new("audit").about("Log listeners"));
        super::generate(cmd, &dir).unwrap();
        let mut man: Vec<String> = std::fs::read_dir(dir.join("man"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        man.sort();
        assert_eq!(man, ["lsn-trace-audit.1", "lsn-trace.1"]);
        let audit = std::fs::read_to_string(dir.join("man/lsn-trace-audit.1")).unwrap();
        assert!(audit.contains("lsn\\-trace\\-audit"), "{audit}");
        assert!(audit.contains("1.2.3"), "{audit}");
        let bash = std::fs::read_to_string(dir.join("completions/lsn-trace.bash")).unwrap();
        assert!(bash.contains("complete -F _lsn__trace") && bash.contains("--json"));
        for f in ["_lsn-trace", "lsn-trace.fish"] {
            assert!(dir.join("completions").join(f).is_file(), "{f}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
