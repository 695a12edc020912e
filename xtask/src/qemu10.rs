//! A newer QEMU for the board scenarios whose machine Debian 12's QEMU 7.2 lacks
//! (`imx8mp-evk`): Debian's own `qemu-system-arm` and `qemu-system-data` from the
//! `bookworm-backports` suite, fetched with `apt-get download` (the suite added to apt's
//! sources first if missing, on the mirror the machine already uses) and unpacked into
//! `build/qemu10/`, beside the system's QEMU: nothing is installed but the shared libraries it
//! links, which are Debian 12's own (backports are built against the stable release).
//!
//! Never pinned: each run asks apt for the suite's current version, and a new one is
//! downloaded and unpacked again (the unpacked tree has a key naming its .debs, as the guest's
//! files do). A system QEMU that already has the machine (Debian 13 and later) is used as it is.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};
use crate::guest;
use crate::sys;

/// The suite that has QEMU 10 for Debian 12.
const SUITE: &str = "bookworm-backports";
/// The release it backports to: its sources line names the same mirror.
const RELEASE: &str = "bookworm";
/// The packages: the emulator (the host's architecture) and its data (ROMs, keymaps).
const PACKAGES: &[(&str, Arch)] = &[
    ("qemu-system-arm", Arch::Native),
    ("qemu-system-data", Arch::All),
];
/// The sources entry xtask writes when the suite is missing (deb822, as Debian 12 writes its
/// own `debian.sources`).
const SOURCES_FILE: &str = "/etc/apt/sources.list.d/bookworm-backports.sources";
/// Where the archive is when no sources entry names a mirror.
const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";

/// A package's architecture in its file name.
#[derive(Clone, Copy)]
enum Arch {
    /// The host's (`dpkg --print-architecture`).
    Native,
    /// `all`.
    All,
}

/// A QEMU that has a machine the system's lacks.
#[derive(Debug, Clone)]
pub struct Qemu {
    /// `qemu-system-aarch64`.
    pub binary: PathBuf,
    /// Its data directory, for `-L`, when it is not the system's QEMU.
    pub data_dir: Option<PathBuf>,
    /// Its version line (`QEMU emulator version ...`).
    pub version: String,
}

fn dir() -> PathBuf {
    sys::build_dir().join("qemu10")
}

/// A QEMU whose `qemu-system-aarch64` has `machine` (`-M help` lists it): the system's if it
/// does, else the one from `bookworm-backports` in `build/qemu10/`, fetched if missing.
pub fn with_machine(machine: &str) -> Result<Qemu> {
    if let Ok(system) = crate::qemu::binary() {
        if has_machine(&system, machine) {
            return describe(system, None);
        }
    }
    let q = fetch()?;
    if !has_machine(&q.binary, machine) {
        return Err(Error::Failed(format!(
            "{} ({}) has no machine `{machine}`",
            q.binary.display(),
            q.version
        )));
    }
    Ok(q)
}

/// Whether `qemu -M help` lists `machine`.
fn has_machine(qemu: &Path, machine: &str) -> bool {
    sys::probe(Command::new(qemu).args(["-M", "help"])).is_some_and(|out| {
        out.lines()
            .any(|l| l.split_whitespace().next() == Some(machine))
    })
}

/// `qemu` and its version line.
fn describe(binary: PathBuf, data_dir: Option<PathBuf>) -> Result<Qemu> {
    let out = sys::output(Command::new(&binary).arg("--version"))?;
    Ok(Qemu {
        version: out.lines().next().unwrap_or_default().trim().to_string(),
        binary,
        data_dir,
    })
}

/// Fetches and unpacks the backports QEMU into `build/qemu10/` unless it is current there.
fn fetch() -> Result<Qemu> {
    if !sys::is_debian() || os_codename().as_deref() != Some(RELEASE) {
        return Err(Error::Failed(format!(
            "the system's QEMU lacks the board, and the newer one xtask fetches is Debian 12's \
             {SUITE}: on another system, install QEMU 10 or later as qemu-system-aarch64"
        )));
    }
    ensure_suite()?;
    let debs_dir = dir().join("debs");
    fs::create_dir_all(&debs_dir).ctx(|| format!("creating {}", debs_dir.display()))?;
    let native = sys::output(Command::new("dpkg").arg("--print-architecture"))?;
    let mut debs = Vec::new();
    for &(pkg, arch) in PACKAGES {
        let arch = match arch {
            Arch::Native => native.trim(),
            Arch::All => "all",
        };
        debs.push(current_deb(pkg, arch, &debs_dir)?);
    }
    let root = dir();
    let stamp = root.join("unpacked.stamp");
    let mut key = String::new();
    for d in &debs {
        key += &guest::deb_key(d)?;
        key.push('\n');
    }
    if !guest::is_current(&stamp, &key) {
        let usr = root.join("usr");
        println!("xtask: unpacking QEMU from {SUITE} into {}", root.display());
        let _ = fs::remove_dir_all(&usr);
        for d in &debs {
            sys::run(Command::new("dpkg-deb").arg("-x").arg(d).arg(&root))?;
        }
        fs::write(&stamp, b"").ctx(|| format!("writing {}", stamp.display()))?;
        fs::write(guest::key_path(&stamp), &key)
            .ctx(|| format!("writing the key of {}", stamp.display()))?;
    }
    let binary = root.join("usr/bin/qemu-system-aarch64");
    ensure_libraries(&binary)?;
    describe(binary, Some(root.join("usr/share/qemu")))
}

/// The release's code name from `/etc/os-release`.
fn os_codename() -> Option<String> {
    let text = fs::read_to_string("/etc/os-release").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
}

/// Adds [`SUITE`] to apt's sources if apt does not know it, then refreshes the lists.
fn ensure_suite() -> Result<()> {
    let policy = sys::output(Command::new("apt-cache").arg("policy"))?;
    if policy.contains(&format!(" {SUITE}/")) {
        return Ok(());
    }
    let mirror = mirror();
    let entry = sources_entry(&mirror);
    if !sys::is_root() {
        return Err(Error::Failed(format!(
            "apt does not know {SUITE}; as root, write {SOURCES_FILE}:\n{entry}then run: apt-get update"
        )));
    }
    println!("xtask: adding {SUITE} ({mirror}) to apt's sources: {SOURCES_FILE}");
    fs::write(SOURCES_FILE, entry).ctx(|| format!("writing {SOURCES_FILE}"))?;
    sys::apt_update()
}

/// The deb822 entry for [`SUITE`] on `mirror`, signed by the archive's own keys.
fn sources_entry(mirror: &str) -> String {
    format!(
        "Types: deb\nURIs: {mirror}\nSuites: {SUITE}\nComponents: main\n\
         Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"
    )
}

/// The mirror apt's sources use for [`RELEASE`] itself, else [`DEFAULT_MIRROR`].
fn mirror() -> String {
    let mut texts: Vec<String> = fs::read_to_string("/etc/apt/sources.list")
        .into_iter()
        .collect();
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "sources" || x == "list") {
                texts.extend(fs::read_to_string(&p).ok());
            }
        }
    }
    texts
        .iter()
        .find_map(|t| release_mirror(t, RELEASE))
        .unwrap_or_else(|| DEFAULT_MIRROR.into())
}

/// The URI of the first entry of a sources file (one-line `deb URI SUITE ...` or deb822
/// stanzas) whose suites include `release`.
fn release_mirror(text: &str, release: &str) -> Option<String> {
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest = words.skip_while(|w| w.starts_with('['));
        if let (Some(uri), Some(suite)) = (rest.next(), rest.next()) {
            if suite == release {
                return Some(uri.to_string());
            }
        }
    }
    text.split("\n\n").find_map(|stanza| {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_string())
            })
        };
        let enabled = field("Enabled").is_none_or(|v| v != "no");
        let types = field("Types")?;
        let suites = field("Suites")?;
        (enabled
            && types.split_whitespace().any(|t| t == "deb")
            && suites.split_whitespace().any(|s| s == release))
        .then(|| field("URIs"))?
        .and_then(|u| u.split_whitespace().next().map(str::to_string))
    })
}

/// The .deb of the suite's current version of `pkg` in `dir`, downloaded if missing; older
/// ones are removed.
fn current_deb(pkg: &str, arch: &str, dir: &Path) -> Result<PathBuf> {
    let spec = format!("{pkg}/{SUITE}");
    let show = sys::output(Command::new("apt-cache").args(["show", "--no-all-versions", &spec]))?;
    let version = show
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(str::trim)
        .ok_or_else(|| Error::Failed(format!("`apt-cache show {spec}` names no version")))?;
    // apt writes the epoch's colon as %3a in file names.
    let want = dir.join(format!("{pkg}_{}_{arch}.deb", version.replace(':', "%3a")));
    if !want.is_file() {
        let got = guest::download_spec(pkg, arch, &spec, dir)?;
        if got != want {
            return Err(Error::Failed(format!(
                "apt-get download {spec} left {}, expected {}",
                got.display(),
                want.display()
            )));
        }
    }
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        let n = p.file_name().unwrap_or_default().to_string_lossy();
        if p != want && n.starts_with(&format!("{pkg}_")) && n.ends_with(&format!("_{arch}.deb")) {
            let _ = fs::remove_file(&p);
        }
    }
    Ok(want)
}

/// The shared libraries `binary` links that the dynamic loader cannot find (`ldd`).
fn missing_libraries(binary: &Path) -> Result<Vec<String>> {
    let out = sys::output(Command::new("ldd").arg(binary))?;
    Ok(out
        .lines()
        .filter(|l| l.contains("not found"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect())
}

/// Makes sure every library `binary` links is there: the backports package's dependencies
/// are Debian 12 packages (the system's QEMU 7.2 already brings most), installed with apt if
/// one is missing.
fn ensure_libraries(binary: &Path) -> Result<()> {
    let missing = missing_libraries(binary)?;
    if missing.is_empty() {
        return Ok(());
    }
    let spec = format!("{}/{SUITE}", PACKAGES[0].0);
    let show = sys::output(Command::new("apt-cache").args(["show", "--no-all-versions", &spec]))?;
    let deps = library_dependencies(&show);
    if !sys::can_apt_install() {
        return Err(Error::Failed(format!(
            "{} needs {} (not found); as root, run: apt-get install --no-install-recommends {}",
            binary.display(),
            missing.join(", "),
            deps.join(" ")
        )));
    }
    let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
    sys::apt_install(&deps)?;
    let still = missing_libraries(binary)?;
    if still.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "{} still cannot find {} after installing its dependencies",
            binary.display(),
            still.join(", ")
        )))
    }
}

/// The package names of a `Depends:` line, but QEMU's own packages (which are unpacked, not
/// installed).
fn library_dependencies(show: &str) -> Vec<String> {
    let Some(line) = show.lines().find_map(|l| l.strip_prefix("Depends:")) else {
        return Vec::new();
    };
    line.split(',')
        .filter_map(|d| {
            // `a (>= 1) | b`: the first alternative, without its version.
            let name = d.split('|').next()?.split_whitespace().next()?;
            (!name.starts_with("qemu-")).then(|| name.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mirror_is_the_releases_own() {
        let deb822 = "Types: deb\n# a comment\nURIs: http://mirror.example/debian\n\
                      Suites: bookworm bookworm-updates\nComponents: main\n\n\
                      Types: deb\nURIs: http://deb.debian.org/debian-security\n\
                      Suites: bookworm-security\nComponents: main\n";
        assert_eq!(
            release_mirror(deb822, "bookworm").as_deref(),
            Some("http://mirror.example/debian")
        );
        let one_line = "deb [arch=amd64] http://ftp.example/debian bookworm main\n";
        assert_eq!(
            release_mirror(one_line, "bookworm").as_deref(),
            Some("http://ftp.example/debian")
        );
        let security_only = "deb http://security.debian.org bookworm-security main\n";
        assert_eq!(release_mirror(security_only, "bookworm"), None);
        let disabled = "Enabled: no\nTypes: deb\nURIs: http://x/debian\nSuites: bookworm\n";
        assert_eq!(release_mirror(disabled, "bookworm"), None);
        assert!(sources_entry("http://m/debian").contains("Suites: bookworm-backports\n"));
    }

    #[test]
    fn only_library_dependencies_are_installed() {
        let show = "Package: qemu-system-arm\nDepends: libaio1 (>= 0.3.93), libc6 (>= 2.34), \
                    libfoo1 | libfoo-alt1, qemu-system-common (= 1:10.0.2), \
                    qemu-system-data (>> 1:10.0.2~)\nVersion: 1:10.0.2\n";
        assert_eq!(library_dependencies(show), ["libaio1", "libc6", "libfoo1"]);
    }
}
