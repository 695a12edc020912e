//! The dt-corpus step: `platform::discover` on real boards' device trees, against `dtc`'s
//! reading of the same trees (`hypervisor/tests/dt_corpus.rs` does the checking).
//!
//! The trees are those of Debian's arm64 kernel, whatever `linux-image-arm64:arm64` depends on
//! today (never pinned), fetched with `apt-get download` into `build/dt-corpus/debs/` and
//! unpacked, its `usr/lib/linux-image-*/` only, into `build/dt-corpus/tree/`. The unpacked tree
//! has a key naming the package it came from: a new kernel unpacks again, the same one does not.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, IoContext, Result};
use crate::guest;
use crate::scenarios::Outcome;
use crate::sys;

/// The step's name in `cargo xtask test`.
pub const NAME: &str = "dt-corpus";
/// The meta-package whose dependency names the current generic arm64 kernel (the one with
/// every board's trees).
const KERNEL_META: &str = "linux-image-arm64";
/// Programs the test runs, and their Debian package.
const TOOLS: &[(&str, &str)] = &[
    ("dtc", "device-tree-compiler"),
    ("fdtput", "device-tree-compiler"),
];

fn dir() -> PathBuf {
    sys::build_dir().join("dt-corpus")
}

/// Runs the step: its outcome, failed with the reason if the corpus could not be had.
pub fn test_step() -> Outcome {
    let failures = match prepare().and_then(|dtbs| run(&dtbs)) {
        Ok(()) => vec![],
        Err(e) => vec![e.to_string()],
    };
    Outcome {
        name: NAME.into(),
        failures,
        console: None,
    }
}

/// One board's tree from the corpus (`freescale/imx8mp-evk.dtb`), fetched and unpacked as the
/// step does: the tree a board scenario boots that board with.
pub fn board_tree(name: &str) -> Result<PathBuf> {
    let path = prepare()?.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Failed(format!(
            "Debian's arm64 kernel package has no {name} (looked for {})",
            path.display()
        )))
    }
}

/// Installs dtc if missing, fetches and unpacks the kernel package's trees; their directory.
fn prepare() -> Result<PathBuf> {
    ensure_tools()?;
    if !sys::is_debian() {
        return Err(Error::Failed(
            "the board trees come from Debian's arm64 kernel package: dt-corpus needs a \
             Debian-family host (apt, dpkg-deb)"
                .into(),
        ));
    }
    guest::ensure_arm64_architecture()?;
    let pkg = guest::resolve_kernel_dependency(KERNEL_META)?;
    let debs = dir().join("debs");
    fs::create_dir_all(&debs).ctx(|| format!("creating {}", debs.display()))?;
    let deb = guest::download_arch(&pkg, "arm64", &debs)?;
    drop_older_debs(&debs, &deb);
    unpack_dtbs(&deb)
}

/// Installs the missing [`TOOLS`] with apt, or says which to install.
fn ensure_tools() -> Result<()> {
    sys::ensure_programs(TOOLS, "dt-corpus (reading the trees with dtc)")
}

/// Removes the kernel packages an older run left (60 MB each): only `keep` is used.
fn drop_older_debs(debs: &Path, keep: &Path) {
    for entry in fs::read_dir(debs).into_iter().flatten().flatten() {
        let p = entry.path();
        let name = p.file_name().unwrap_or_default().to_string_lossy();
        if p != keep && name.starts_with("linux-image-") && name.ends_with(".deb") {
            let _ = fs::remove_file(&p);
        }
    }
}

/// `build/dt-corpus/tree/usr/lib/linux-image-*/`, unpacked from `deb` unless the key says it
/// already was.
fn unpack_dtbs(deb: &Path) -> Result<PathBuf> {
    let tree = dir().join("tree");
    let key = guest::deb_key(deb)?;
    if !guest::is_current(&dir().join("tree.stamp"), &key) {
        println!("xtask: unpacking the device trees of {}", deb.display());
        let _ = fs::remove_dir_all(&tree);
        fs::create_dir_all(&tree).ctx(|| format!("creating {}", tree.display()))?;
        // Only the trees: the package's modules are ten times their size.
        let mut dpkg = Command::new("dpkg-deb")
            .arg("--fsys-tarfile")
            .arg(deb)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|source| Error::Spawn {
                program: "dpkg-deb".into(),
                source,
            })?;
        let stdout = dpkg.stdout.take().expect("piped");
        let mut tar = Command::new("tar");
        tar.args(["-x", "--wildcards", "-C"])
            .arg(&tree)
            .arg("./usr/lib/linux-image-*")
            .stdin(stdout);
        let untar = sys::run(&mut tar);
        let status = dpkg.wait().ctx(|| "waiting for dpkg-deb".to_string())?;
        untar?;
        if !status.success() {
            return Err(Error::Failed(format!(
                "dpkg-deb --fsys-tarfile {} failed: {status}",
                deb.display()
            )));
        }
        // The stamp (and its key) last: an interrupted unpack is redone.
        let stamp = dir().join("tree.stamp");
        fs::write(&stamp, b"").ctx(|| format!("writing {}", stamp.display()))?;
        fs::write(guest::key_path(&stamp), &key)
            .ctx(|| format!("writing the key of {}", stamp.display()))?;
    }
    let lib = tree.join("usr/lib");
    fs::read_dir(&lib)
        .ctx(|| format!("listing {}", lib.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .starts_with("linux-image-")
        })
        .ok_or_else(|| {
            Error::Failed(format!(
                "{} has no usr/lib/linux-image-*/: not a kernel package with device trees",
                deb.display()
            ))
        })
}

/// `cargo test -p rhyve-hypervisor --test dt_corpus` on the trees in `dtbs`, its table shown.
fn run(dtbs: &Path) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "-p",
        "rhyve-hypervisor",
        "--test",
        "dt_corpus",
        "--",
        "--ignored",
        "--nocapture",
    ])
    .env("RHYVE_DT_CORPUS", dtbs)
    .current_dir(sys::repo_root());
    println!(
        "xtask: RHYVE_DT_CORPUS={} {}",
        dtbs.display(),
        sys::render(&cmd)
    );
    sys::run(&mut cmd)
}
