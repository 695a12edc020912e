//! Finding a Rust toolchain that can build the aarch64 EL2 image, and building it.
//!
//! In order of preference: (a) the active toolchain has the `aarch64-unknown-none-softfloat`
//! target installed; (b) it has `rust-src`, so `-Zbuild-std` can build core and alloc (with
//! `RUSTC_BOOTSTRAP=1` on a stable toolchain); (c) Debian's `rustc-web` packages, whose
//! `rust-web-src` provides the library source; (d) install (c) with apt when root on Debian.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};
use crate::image;
use crate::sys;

/// The image's target triple.
pub const TARGET: &str = "aarch64-unknown-none-softfloat";
/// The hypervisor package and binary.
const PACKAGE: &str = "rhyve-hypervisor";
const BIN: &str = "rhyve";
/// The test guests' package (tests/guests).
const TEST_GUEST_PACKAGE: &str = "rhyve-test-guests";
/// Debian's packages for path (c).
const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "rust-web-llvm",
    "lld-22",
    DEBIAN_CLIPPY_PACKAGE,
];
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_LIBRARY_SRC: &str = "/usr/lib/rustlib/src/rust/library";
const BUILD_STD: &[&str] = &[
    "-Zbuild-std=core,alloc,compiler_builtins",
    "-Zbuild-std-features=compiler-builtins-mem",
];

/// How the image gets built.
#[derive(Debug)]
pub enum Toolchain {
    /// (a) The active toolchain has the target's prebuilt core/alloc.
    Prebuilt { cargo: PathBuf, rustc: PathBuf },
    /// (b) The active toolchain has rust-src: build core/alloc with `-Zbuild-std`.
    BuildStd { cargo: PathBuf, rustc: PathBuf },
    /// (c) Debian's rustc-web + rust-web-src, with `-Zbuild-std`.
    Debian,
}

impl Toolchain {
    /// One line saying which path was taken.
    fn describe(&self) -> String {
        let version = |rustc: &Path| {
            sys::probe(Command::new(rustc).arg("--version"))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| rustc.display().to_string())
        };
        match self {
            Self::Prebuilt { rustc, .. } => {
                format!("{} with the installed {TARGET} target", version(rustc))
            }
            Self::BuildStd { rustc, .. } => {
                format!("{} with rust-src (-Zbuild-std)", version(rustc))
            }
            Self::Debian => {
                format!(
                    "Debian {} ({DEBIAN_RUSTC}) with {DEBIAN_LIBRARY_SRC} (-Zbuild-std)",
                    version(Path::new(DEBIAN_RUSTC))
                )
            }
        }
    }
}

/// The cargo and rustc that run us (the outer cargo sets `CARGO`; `RUSTC` if the user did).
fn active_cargo_rustc() -> (PathBuf, PathBuf) {
    let cargo = std::env::var_os("CARGO")
        .map(PathBuf::from)
        .unwrap_or_else(|| "cargo".into());
    let rustc = std::env::var_os("RUSTC")
        .map(PathBuf::from)
        .unwrap_or_else(|| "rustc".into());
    (cargo, rustc)
}

/// Whether `rustc` has the target's prebuilt libraries.
fn has_prebuilt_target(rustc: &Path) -> bool {
    let Some(libdir) =
        sys::probe(Command::new(rustc).args(["--print", "target-libdir", "--target", TARGET]))
    else {
        return false;
    };
    std::fs::read_dir(libdir.trim())
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libcore-"))
        })
        .unwrap_or(false)
}

/// Whether `rustc`'s sysroot holds the library sources (the rust-src component).
fn has_rust_src(rustc: &Path) -> bool {
    sys::probe(Command::new(rustc).args(["--print", "sysroot"])).is_some_and(|s| {
        Path::new(s.trim())
            .join("lib/rustlib/src/rust/library")
            .is_dir()
    })
}

fn has_debian_toolchain() -> bool {
    Path::new(DEBIAN_RUSTC).is_file()
        && Path::new(DEBIAN_CARGO).is_file()
        && Path::new(DEBIAN_LIBRARY_SRC).is_dir()
}

/// Finds a toolchain, installing Debian's when allowed (see the module comment).
pub fn detect() -> Result<Toolchain> {
    let (cargo, rustc) = active_cargo_rustc();
    if has_prebuilt_target(&rustc) {
        return Ok(Toolchain::Prebuilt { cargo, rustc });
    }
    if has_rust_src(&rustc) {
        return Ok(Toolchain::BuildStd { cargo, rustc });
    }
    if has_debian_toolchain() {
        return Ok(Toolchain::Debian);
    }
    if sys::can_apt_install() {
        println!("xtask: no aarch64 Rust toolchain found; installing Debian's rustc-web");
        sys::apt_install(DEBIAN_PACKAGES)?;
        if has_debian_toolchain() {
            return Ok(Toolchain::Debian);
        }
        return Err(Error::Failed(format!(
            "installed {} but {DEBIAN_RUSTC}, {DEBIAN_CARGO} or {DEBIAN_LIBRARY_SRC} is still missing",
            DEBIAN_PACKAGES.join(" ")
        )));
    }
    Err(Error::Failed(format!(
        "install one of: `rustup target add {TARGET}` (and `rustup component add clippy`), or \
         (Debian) `apt-get install {}`",
        DEBIAN_PACKAGES.join(" ")
    )))
}

/// Environment variables an outer `cargo run` (and rustup) set for us that must not leak into
/// a build by another toolchain: they would make /usr/bin/cargo run rustup's rustc, a wrapper,
/// or a rustdoc of another version.
const TOOLCHAIN_VARS: &[&str] = &[
    "CARGO",
    "RUSTC",
    "RUSTDOC",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTUP_TOOLCHAIN",
    "CARGO_BUILD_RUSTC",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTDOC",
];

/// Removes what the outer `cargo run` set for the xtask package itself (CARGO_PKG_*,
/// CARGO_MANIFEST_*, ...), so the inner cargo sees the user's environment only. RUSTFLAGS would
/// replace the target's rustflags in .cargo/config.toml (PIE, no dynamic linker) and produce a
/// broken image, so it goes too.
fn scrub_outer_cargo_env(cmd: &mut Command) {
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("CARGO_PKG_")
            || k.starts_with("CARGO_MANIFEST_")
            || matches!(
                &*k,
                "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_RUSTC_CURRENT_DIR"
            )
            || matches!(
                &*k,
                "RUSTFLAGS" | "CARGO_ENCODED_RUSTFLAGS" | "CARGO_BUILD_RUSTFLAGS"
            )
        {
            cmd.env_remove(&*k);
        }
    }
}

/// What a cargo command does with the aarch64 target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    /// `cargo build --release`.
    Build,
    /// `cargo clippy` (the lints' `-D warnings` follows `--`).
    Clippy,
}

/// Debian's clippy for path (c): `cargo-clippy` (rust-web-clippy), run as itself so that the
/// cargo it calls is Debian's, not the `cargo-clippy` proxy rustup puts first on PATH.
const DEBIAN_CARGO_CLIPPY: &str = "/usr/bin/cargo-clippy";
const DEBIAN_CLIPPY_PACKAGE: &str = "rust-web-clippy";

/// The cargo command for `tc` that runs `verb` on `what` (`-p PACKAGE --bin BIN`, ...) for the
/// aarch64 target.
fn cargo_command(tc: &Toolchain, verb: Verb, what: &[&str]) -> Command {
    let mut cmd;
    let build_std = match tc {
        Toolchain::Prebuilt { cargo, .. } => {
            cmd = Command::new(cargo);
            false
        }
        Toolchain::BuildStd { cargo, .. } => {
            cmd = Command::new(cargo);
            true
        }
        Toolchain::Debian => {
            cmd = Command::new(match verb {
                Verb::Build => DEBIAN_CARGO,
                Verb::Clippy => DEBIAN_CARGO_CLIPPY,
            });
            for v in TOOLCHAIN_VARS {
                cmd.env_remove(v);
            }
            cmd.env("RUSTC", DEBIAN_RUSTC).env("CARGO", DEBIAN_CARGO);
            true
        }
    };
    scrub_outer_cargo_env(&mut cmd);
    cmd.current_dir(sys::repo_root());
    match verb {
        Verb::Build => cmd.args(["build", "--release"]),
        Verb::Clippy => cmd.arg("clippy"),
    };
    cmd.args(what).args(["--target", TARGET]);
    if build_std {
        // -Z flags on a stable/beta compiler: the documented escape hatch, for this build only.
        cmd.env("RUSTC_BOOTSTRAP", "1").args(BUILD_STD);
    }
    cmd
}

/// The `cargo build` command for `tc`, building `what` (`-p PACKAGE --bin BIN`, ...).
fn build_command(tc: &Toolchain, what: &[&str]) -> Command {
    cargo_command(tc, Verb::Build, what)
}

/// The packages built for the aarch64 target: the EL2 image, the VMM partition, the test
/// guests, and the libraries they share.
const AARCH64_PACKAGES: &[&str] = &[
    PACKAGE,
    VMM_PACKAGE,
    TEST_GUEST_PACKAGE,
    "rhyve-abi",
    "rhyve-vmboot",
    "rhyve-bsp",
];

/// `cargo clippy -D warnings` on every crate built for the aarch64 target, with the toolchain
/// that builds them (Debian's clippy installed with apt when that toolchain is Debian's and
/// root may). The core's image embeds the VMM partition's; clippy only type-checks, so an empty
/// stand-in serves.
pub fn clippy_aarch64_command() -> Result<Command> {
    let tc = detect()?;
    if matches!(tc, Toolchain::Debian) && !Path::new(DEBIAN_CARGO_CLIPPY).is_file() {
        if !sys::can_apt_install() {
            return Err(Error::Failed(format!(
                "{DEBIAN_CARGO_CLIPPY} not found: install Debian's {DEBIAN_CLIPPY_PACKAGE}"
            )));
        }
        sys::apt_install(&[DEBIAN_CLIPPY_PACKAGE])?;
    }
    let stand_in = sys::target_dir().join("lint").join("vmm-stand-in.bin");
    if let Some(dir) = stand_in.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&stand_in, []).ctx(|| format!("writing {}", stand_in.display()))?;
    let what: Vec<&str> = AARCH64_PACKAGES
        .iter()
        .flat_map(|p| ["-p", p])
        .chain(["--keep-going"])
        .collect();
    let mut cmd = cargo_command(&tc, Verb::Clippy, &what);
    cmd.env("RHYVE_VMM_IMAGE", &stand_in)
        .args(["--", "-D", "warnings"]);
    Ok(cmd)
}

/// The hypervisor ELF that `cargo build` produces.
pub fn elf_path() -> PathBuf {
    sys::target_dir().join(TARGET).join("release").join(BIN)
}

/// The flat binary QEMU boots.
pub fn bin_path() -> PathBuf {
    sys::target_dir().join("rhyve.bin")
}

/// The VMM partition's package and binary (embedded in the image).
const VMM_PACKAGE: &str = "rhyve-vmm";
/// See [`VMM_PACKAGE`].
const VMM_BIN: &str = "rhyve-vmm";

/// Builds the VMM partition, then the EL2 image that embeds it, and converts the image to
/// `target/rhyve.bin`; returns that path.
pub fn build_image() -> Result<PathBuf> {
    let tc = detect()?;
    println!("xtask: toolchain: {}", tc.describe());
    // The core embeds the VMM partition's image: build and flatten that first.
    let mut cmd = build_command(&tc, &["-p", VMM_PACKAGE, "--bin", VMM_BIN]);
    sys::run(&mut cmd).map_err(|e| Error::Failed(format!("building the VMM partition: {e}")))?;
    let vmm_elf = sys::target_dir().join(TARGET).join("release").join(VMM_BIN);
    let elf = std::fs::read(&vmm_elf).ctx(|| format!("reading {}", vmm_elf.display()))?;
    let vmm_bin = sys::target_dir().join(format!("{VMM_BIN}.bin"));
    std::fs::write(&vmm_bin, image::flatten(&elf)?)
        .ctx(|| format!("writing {}", vmm_bin.display()))?;
    let mut cmd = build_command(&tc, &["-p", PACKAGE, "--bin", BIN]);
    cmd.env("RHYVE_VMM_IMAGE", &vmm_bin);
    sys::run(&mut cmd).map_err(|e| Error::Failed(format!("building the hypervisor image: {e}")))?;
    let elf_path = elf_path();
    let elf = std::fs::read(&elf_path).ctx(|| format!("reading {}", elf_path.display()))?;
    let bin = image::flatten(&elf)?;
    if !image::has_arm64_image_magic(&bin) {
        println!("xtask: warning: the image has no arm64 Image header (\"ARM\\x64\" at offset 56); QEMU will not boot it at EL2 as a kernel");
    }
    let bin_path = bin_path();
    std::fs::write(&bin_path, &bin).ctx(|| format!("writing {}", bin_path.display()))?;
    println!("xtask: {} ({} bytes)", bin_path.display(), bin.len());
    Ok(bin_path)
}

/// The flat binary of test guest `name` (`target/test-guests/<name>.bin`).
pub fn test_guest_bin(name: &str) -> PathBuf {
    sys::target_dir()
        .join("test-guests")
        .join(format!("{name}.bin"))
}

/// The test guests' names: one binary per file of `tests/guests/src/bin/`, as cargo finds
/// them, so a new guest needs no list of its own.
pub fn test_guests() -> Result<Vec<String>> {
    let dir = sys::repo_root().join("tests/guests/src/bin");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).ctx(|| format!("reading {}", dir.display()))? {
        let path = entry.ctx(|| format!("reading {}", dir.display()))?.path();
        if path.extension().is_some_and(|x| x == "rs") {
            if let Some(name) = path.file_stem().and_then(|n| n.to_str()) {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Builds the test guests (tests/guests) with the same toolchain and flattens each ELF to
/// [`test_guest_bin`]. They are raw binaries (no arm64 Image header), linked at guest RAM base
/// + 0x80000 where rhyve loads such a kernel (linker/test-guest.ld).
pub fn build_test_guests() -> Result<()> {
    let tc = detect()?;
    let mut cmd = build_command(&tc, &["-p", TEST_GUEST_PACKAGE, "--bins"]);
    sys::run(&mut cmd).map_err(|e| Error::Failed(format!("building the test guests: {e}")))?;
    let names = test_guests()?;
    for name in &names {
        let elf_path = sys::target_dir().join(TARGET).join("release").join(name);
        let elf = std::fs::read(&elf_path).ctx(|| format!("reading {}", elf_path.display()))?;
        let bin = image::flatten(&elf)?;
        let bin_path = test_guest_bin(name);
        if let Some(dir) = bin_path.parent() {
            std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&bin_path, &bin).ctx(|| format!("writing {}", bin_path.display()))?;
    }
    println!(
        "xtask: test guests in {} ({})",
        sys::target_dir().join("test-guests").display(),
        names.join(", ")
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_test_guests_are_the_files_of_their_bin_directory() {
        let names = test_guests().unwrap();
        for name in ["exitbench", "marker", "mmio", "spin", "virtio", "vmmfault"] {
            assert!(names.iter().any(|n| n == name), "{name} not in {names:?}");
        }
    }
}
