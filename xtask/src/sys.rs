//! Running programs, and the few facts about the host that decide how (root? Debian?).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};

/// The repository root (the workspace that holds this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` if set (as cargo itself does), else `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => repo_root().join(d),
        _ => repo_root().join("target"),
    }
}

/// Where downloaded and generated artefacts go (`build/`, gitignored).
pub fn build_dir() -> PathBuf {
    repo_root().join("build")
}

/// A command as a person would type it, for messages.
pub fn render(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains([' ', '"', '\'']) {
            s.push_str(&format!(" '{a}'"));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

fn spawn_error(cmd: &Command, source: std::io::Error) -> Error {
    Error::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source,
    }
}

/// Runs `cmd` with inherited stdio; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd.status().map_err(|e| spawn_error(cmd, e))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::CommandFailed {
            command: render(cmd),
            status,
        })
    }
}

/// Runs `cmd` and returns its standard output; stderr passes through. Fails unless it exits 0.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| spawn_error(cmd, e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Error::CommandFailed {
            command: render(cmd),
            status: out.status,
        })
    }
}

/// Runs `cmd` quietly; `Some(stdout)` if it exits 0, `None` if it fails or cannot start.
pub fn probe(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `program` can be found on PATH (or is a path that exists).
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Whether we run as root (apt and dpkg changes need it).
pub fn is_root() -> bool {
    probe(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0")
}

/// Whether this is a Debian-family system with apt.
pub fn is_debian() -> bool {
    Path::new("/etc/debian_version").exists() && find_program("apt-get").is_some()
}

/// Whether we may install packages with apt ourselves.
pub fn can_apt_install() -> bool {
    is_debian() && is_root()
}

/// `apt-get` with the environment a non-interactive install needs (CI has no stdin).
fn apt_get() -> Command {
    let mut c = Command::new("apt-get");
    c.env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null());
    c
}

/// `apt-get update`.
pub fn apt_update() -> Result<()> {
    println!("xtask: apt-get update");
    run(apt_get().arg("update"))
}

/// Installs with apt the packages of `tools` (program, package) whose program is missing, or
/// fails naming them when apt cannot be used; `needed_for` says what needs them.
pub fn ensure_programs(tools: &[(&str, &str)], needed_for: &str) -> Result<()> {
    let mut missing: Vec<&str> = tools
        .iter()
        .filter(|(prog, _)| find_program(prog).is_none())
        .map(|(_, pkg)| *pkg)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !can_apt_install() {
        return Err(Error::Failed(format!(
            "{needed_for} needs {}; as root, run: apt-get install {}",
            missing.join(", "),
            missing.join(" ")
        )));
    }
    apt_install(&missing)
}

/// `apt-get install -y PKGS`; if that fails (a package unknown to stale lists), `apt-get
/// update` and try once more.
pub fn apt_install(pkgs: &[&str]) -> Result<()> {
    println!("xtask: apt-get install -y {}", pkgs.join(" "));
    if run(apt_get()
        .args(["install", "-y", "--no-install-recommends"])
        .args(pkgs))
    .is_ok()
    {
        return Ok(());
    }
    apt_update()?;
    run(apt_get()
        .args(["install", "-y", "--no-install-recommends"])
        .args(pkgs))
}
