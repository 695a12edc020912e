//! The default guest: Debian's arm64 cloud kernel and a busybox initramfs, in `build/guest/`.
//!
//! Both come from Debian's archive through apt (`dpkg --add-architecture arm64`, then
//! `apt-get download`), so they are signed, current and need no other download tool. The
//! kernel package is whatever `linux-image-cloud-arm64:arm64` depends on today: never pinned.
//! Outputs are rebuilt only when their inputs change: each has a `.key` file beside it naming
//! the inputs it was made from.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::cpio;
use crate::error::{Error, IoContext, Result};
use crate::image::has_arm64_image_magic;
use crate::sys;

/// The meta-package whose dependency names the current kernel.
const KERNEL_META: &str = "linux-image-cloud-arm64";
/// Busybox, statically linked (the initramfs has no libc).
const BUSYBOX_PKG: &str = "busybox-static";
/// Bumped when the initramfs layout below changes, so caches rebuild.
const INITRAMFS_LAYOUT: u32 = 3;
/// The kernel's virtio drivers (modules in Debian's cloud kernel), in the order `/init` loads
/// them: each after what it depends on. They go to `/lib/modules/virtio/NAME.ko`.
pub const VIRTIO_MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_mmio",
    "drivers/char/virtio_console",
    "drivers/char/hw_random/virtio-rng",
    "drivers/block/virtio_blk",
    "net/core/failover",
    "drivers/net/net_failover",
    "drivers/net/virtio_net",
];
/// Where the virtio modules go in the initramfs.
const MODULE_DIR: &str = "/lib/modules/virtio";
/// The EFI variable filesystem (a module in Debian's cloud kernel), which `/init` loads only
/// when a test asks for it (`rhyve.efivar=1`): booted without UEFI it would fail to load.
const EFI_MODULES: &[&str] = &["fs/efivarfs/efivarfs"];
/// Where the EFI modules go in the initramfs.
const EFI_MODULE_DIR: &str = "/lib/modules/efi";
/// Directories every guest tool expects.
const DIRS: &[&str] = &[
    "/bin",
    "/sbin",
    "/usr",
    "/usr/bin",
    "/usr/sbin",
    "/etc",
    "/proc",
    "/sys",
    "/dev",
    "/root",
    "/lib",
    "/lib/modules",
    MODULE_DIR,
    EFI_MODULE_DIR,
];

/// The guest that `run`, `test` and `bench` boot by default.
#[derive(Debug, Clone)]
pub struct GuestFiles {
    /// The uncompressed arm64 Image.
    pub kernel: PathBuf,
    /// The busybox initramfs (newc cpio).
    pub initrd: PathBuf,
}

pub fn guest_dir() -> PathBuf {
    sys::build_dir().join("guest")
}

/// The guest's init script, kept with the test guests.
fn init_script() -> PathBuf {
    sys::repo_root().join("tests/guest/init.sh")
}

/// Makes sure `build/guest/Image` and `build/guest/initramfs.cpio` are current.
pub fn fetch() -> Result<GuestFiles> {
    let dir = guest_dir();
    let files = GuestFiles {
        kernel: dir.join("Image"),
        initrd: dir.join("initramfs.cpio"),
    };
    if !sys::is_debian() {
        if files.kernel.is_file() && files.initrd.is_file() {
            println!(
                "xtask: not a Debian host: using the existing {}",
                dir.display()
            );
            return Ok(files);
        }
        return Err(Error::Failed(
            "fetching the guest needs a Debian-family host (dpkg and apt fetch Debian's arm64 kernel and \
             busybox); elsewhere, pass --kernel and --initrd to `cargo xtask run`"
                .into(),
        ));
    }
    let debs = dir.join("debs");
    fs::create_dir_all(&debs).ctx(|| format!("creating {}", debs.display()))?;
    ensure_arm64_architecture()?;
    let kernel_pkg = resolve_kernel_package()?;
    let kernel_deb = download(&kernel_pkg, &debs)?;
    let busybox_deb = download(BUSYBOX_PKG, &debs)?;
    make_kernel(&kernel_deb, &files.kernel)?;
    make_initramfs(&busybox_deb, &kernel_deb, &files.initrd)?;
    println!(
        "xtask: guest: {} ({kernel_pkg}), {}",
        files.kernel.display(),
        files.initrd.display()
    );
    Ok(files)
}

/// A message for a step that needs root.
fn needs_root(what: &str, commands: &str) -> Error {
    Error::Failed(format!("{what} needs root; as root, run: {commands}"))
}

/// apt can fetch arm64 packages only once dpkg knows the architecture.
pub fn ensure_arm64_architecture() -> Result<()> {
    let archs = sys::output(Command::new("dpkg").arg("--print-foreign-architectures"))?;
    if archs.split_whitespace().any(|a| a == "arm64") {
        return Ok(());
    }
    if !sys::is_root() {
        return Err(needs_root(
            "adding the arm64 architecture to dpkg",
            "dpkg --add-architecture arm64 && apt-get update",
        ));
    }
    println!("xtask: dpkg --add-architecture arm64");
    sys::run(Command::new("dpkg").args(["--add-architecture", "arm64"]))?;
    sys::apt_update()
}

/// The versioned kernel package (`linux-image-6.1.0-NN-cloud-arm64`) the meta-package depends on.
fn resolve_kernel_package() -> Result<String> {
    resolve_kernel_dependency(KERNEL_META)
}

/// The versioned `linux-image-*` package an arm64 kernel meta-package (`META:arm64`) depends
/// on today: never pinned, so the archive's current one.
pub fn resolve_kernel_dependency(meta: &str) -> Result<String> {
    let query =
        || sys::probe(Command::new("apt-cache").args(["depends", &format!("{meta}:arm64")]));
    if let Some(pkg) = query().as_deref().and_then(parse_kernel_dependency) {
        return Ok(pkg);
    }
    // Most likely the arm64 package lists were never fetched.
    if !sys::is_root() {
        return Err(needs_root(
            &format!("apt does not know {meta}:arm64; updating its lists"),
            "apt-get update",
        ));
    }
    sys::apt_update()?;
    query()
        .as_deref()
        .and_then(parse_kernel_dependency)
        .ok_or_else(|| {
            Error::Failed(format!(
                "`apt-cache depends {meta}:arm64` names no linux-image-* package"
            ))
        })
}

/// Picks the kernel package out of `apt-cache depends` output.
fn parse_kernel_dependency(out: &str) -> Option<String> {
    out.lines().find_map(|l| {
        let l = l.trim();
        let dep = l
            .strip_prefix("Depends:")
            .or_else(|| l.strip_prefix("|Depends:"))?
            .trim();
        let dep = dep.trim_start_matches('<').trim_end_matches('>');
        let dep = dep.strip_suffix(":arm64").unwrap_or(dep);
        dep.starts_with("linux-image-").then(|| dep.to_string())
    })
}

/// The already downloaded `PKG_VERSION_ARCH.deb` in `dir`, if any (the newest by name).
pub fn find_deb(pkg: &str, arch: &str, dir: &Path) -> Option<PathBuf> {
    let prefix = format!("{pkg}_");
    let suffix = format!("_{arch}.deb");
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let n = p.file_name().unwrap_or_default().to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(&suffix)
        })
        .collect();
    found.sort();
    found.pop()
}

/// `apt-get download PKG:arm64` into `dir`, unless it is already there.
fn download(pkg: &str, dir: &Path) -> Result<PathBuf> {
    download_arch(pkg, "arm64", dir)
}

/// `apt-get download PKG:ARCH` into `dir` (`PKG` alone for `all`, a package of every
/// architecture), unless it is already there.
pub fn download_arch(pkg: &str, arch: &str, dir: &Path) -> Result<PathBuf> {
    if let Some(deb) = find_deb(pkg, arch, dir) {
        return Ok(deb);
    }
    let spec = if arch == "all" {
        pkg.to_string()
    } else {
        format!("{pkg}:{arch}")
    };
    download_spec(pkg, arch, &spec, dir)
}

/// `apt-get download SPEC` into `dir` (`SPEC`: `PKG`, `PKG:ARCH`, `PKG/SUITE`): the .deb of
/// `pkg` for `arch` it leaves there.
pub fn download_spec(pkg: &str, arch: &str, spec: &str, dir: &Path) -> Result<PathBuf> {
    println!("xtask: apt-get download {spec}");
    let mut cmd = Command::new("apt-get");
    // As root apt drops to the `_apt` user to download, which cannot write to our tree.
    if sys::is_root() {
        cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    cmd.args(["download", spec])
        .current_dir(dir)
        .stdin(Stdio::null());
    if sys::run(&mut cmd).is_err() && sys::is_root() {
        // Stale lists name a file the mirror no longer has: refresh and retry once.
        sys::apt_update()?;
        sys::run(&mut cmd)?;
    }
    find_deb(pkg, arch, dir).ok_or_else(|| {
        Error::Failed(format!(
            "apt-get download {spec} left no .deb in {}",
            dir.display()
        ))
    })
}

/// A stable 64-bit FNV-1a hash, for cache keys (std's hasher may change between releases).
pub fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// A cache key naming a .deb by file name and size.
pub fn deb_key(deb: &Path) -> Result<String> {
    let len = fs::metadata(deb)
        .ctx(|| format!("reading {}", deb.display()))?
        .len();
    Ok(format!(
        "{} {len}",
        deb.file_name().unwrap_or_default().to_string_lossy()
    ))
}

/// The key file beside `output`: `output.key`.
pub fn key_path(output: &Path) -> PathBuf {
    let mut p = output.as_os_str().to_owned();
    p.push(".key");
    PathBuf::from(p)
}

/// Whether `output` exists and was made from the inputs `key` names.
pub fn is_current(output: &Path, key: &str) -> bool {
    output.is_file() && fs::read_to_string(key_path(output)).is_ok_and(|k| k == key)
}

/// Writes `output` and then its key (a crash in between leaves a stale key: a rebuild).
fn write_with_key(output: &Path, data: &[u8], key: &str) -> Result<()> {
    let tmp = output.with_extension("tmp");
    fs::write(&tmp, data).ctx(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, output)
        .ctx(|| format!("renaming {} to {}", tmp.display(), output.display()))?;
    fs::write(key_path(output), key).ctx(|| format!("writing {}", key_path(output).display()))
}

/// Unpacks `deb` into a fresh scratch directory and hands it to `f`, then removes it.
fn with_extracted<T>(deb: &Path, f: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let scratch = guest_dir().join("extract");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch).ctx(|| format!("creating {}", scratch.display()))?;
    sys::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&scratch))?;
    let r = f(&scratch);
    let _ = fs::remove_dir_all(&scratch);
    r
}

/// `build/guest/Image`: the kernel package's `boot/vmlinuz-*`, gunzipped.
fn make_kernel(deb: &Path, output: &Path) -> Result<()> {
    let key = deb_key(deb)?;
    if is_current(output, &key) {
        return Ok(());
    }
    println!("xtask: extracting the kernel from {}", deb.display());
    let image = with_extracted(deb, |root| {
        let boot = root.join("boot");
        let vmlinuz = fs::read_dir(&boot)
            .ctx(|| format!("listing {} from {}", boot.display(), deb.display()))?
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .starts_with("vmlinuz-")
            })
            .ok_or_else(|| Error::Failed(format!("{} has no boot/vmlinuz-*", deb.display())))?;
        let data = fs::read(&vmlinuz).ctx(|| format!("reading {}", vmlinuz.display()))?;
        if data.starts_with(&[0x1f, 0x8b]) {
            gunzip(&vmlinuz)
        } else {
            Ok(data)
        }
    })?;
    if !has_arm64_image_magic(&image) {
        return Err(Error::Failed(format!(
            "the kernel from {} is not an arm64 Image (no \"ARM\\x64\" magic at offset 56)",
            deb.display()
        )));
    }
    write_with_key(output, &image, &key)
}

/// The decompressed contents of a gzip file, by the system's `gzip`.
fn gunzip(path: &Path) -> Result<Vec<u8>> {
    let mut cmd = Command::new("gzip");
    cmd.arg("-dc").arg(path);
    let out = cmd.output().map_err(|source| Error::Spawn {
        program: "gzip".into(),
        source,
    })?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: sys::render(&cmd),
            status: out.status,
        });
    }
    Ok(out.stdout)
}

/// `build/guest/initramfs.cpio`: busybox, `/init`, the kernel's virtio modules, the usual
/// directories and `/dev/console`.
fn make_initramfs(busybox_deb: &Path, kernel_deb: &Path, output: &Path) -> Result<()> {
    let init_path = init_script();
    let init = fs::read(&init_path).ctx(|| format!("reading {}", init_path.display()))?;
    let key = format!(
        "{} {} init.sh:{:016x} layout:{INITRAMFS_LAYOUT}",
        deb_key(busybox_deb)?,
        deb_key(kernel_deb)?,
        fnv1a(&init)
    );
    if is_current(output, &key) {
        return Ok(());
    }
    println!("xtask: building {}", output.display());
    let busybox = with_extracted(busybox_deb, |root| {
        let p = root.join("bin/busybox");
        fs::read(&p).ctx(|| format!("reading bin/busybox from {}", busybox_deb.display()))
    })?;
    let modules = with_extracted(kernel_deb, |root| {
        let mut m = kernel_modules(root, kernel_deb, VIRTIO_MODULES, MODULE_DIR)?;
        m.extend(kernel_modules(
            root,
            kernel_deb,
            EFI_MODULES,
            EFI_MODULE_DIR,
        )?);
        Ok(m)
    })?;
    write_with_key(output, &initramfs(&busybox, &init, &modules), &key)
}

/// The `modules` (paths under `kernel/`, without `.ko`) of the unpacked kernel package at
/// `root`, as (their path in the initramfs, under `dir`; contents).
fn kernel_modules(
    root: &Path,
    deb: &Path,
    modules: &[&str],
    dir: &str,
) -> Result<Vec<(String, Vec<u8>)>> {
    let base = root.join("lib/modules");
    let version = fs::read_dir(&base)
        .ctx(|| format!("listing {} from {}", base.display(), deb.display()))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .ok_or_else(|| Error::Failed(format!("{} has no lib/modules/*", deb.display())))?;
    modules
        .iter()
        .map(|m| {
            let p = version.join("kernel").join(format!("{m}.ko"));
            let name = m.rsplit('/').next().unwrap_or(m);
            let data = fs::read(&p).ctx(|| {
                format!(
                    "reading {} from {} (is the module built in or missing?)",
                    p.display(),
                    deb.display()
                )
            })?;
            Ok((format!("{dir}/{name}.ko"), data))
        })
        .collect()
}

/// The initramfs image for `busybox`, the `init` script and kernel `modules` (path, contents).
fn initramfs(busybox: &[u8], init: &[u8], modules: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut w = cpio::Writer::new();
    for d in DIRS {
        w.dir(d, 0o755);
    }
    w.dir("/tmp", 0o1777);
    // The kernel opens /dev/console for init before anything could create it: without this
    // node init runs with no stdin/stdout at all.
    w.char_dev("/dev/console", 0o600, 5, 1);
    w.file("/bin/busybox", 0o755, busybox);
    w.file("/init", 0o755, init);
    for (path, data) in modules {
        w.file(path, 0o644, data);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dependency_is_found() {
        let out = "linux-image-cloud-arm64:arm64\n  Depends: linux-image-6.1.0-37-cloud-arm64:arm64\n  Breaks: foo\n";
        assert_eq!(
            parse_kernel_dependency(out).as_deref(),
            Some("linux-image-6.1.0-37-cloud-arm64")
        );
        let alt = "x\n |Depends: <linux-image-6.1.0-9-cloud-arm64>\n";
        assert_eq!(
            parse_kernel_dependency(alt).as_deref(),
            Some("linux-image-6.1.0-9-cloud-arm64")
        );
        assert_eq!(
            parse_kernel_dependency("x\n  Depends: initramfs-tools\n"),
            None
        );
    }

    #[test]
    fn initramfs_has_what_the_kernel_and_init_need() {
        let modules = [(format!("{MODULE_DIR}/virtio.ko"), b"KO".to_vec())];
        let members = cpio::read(&initramfs(b"BB", b"#!/bin/busybox sh\n", &modules)).unwrap();
        let get = |n: &str| {
            members
                .iter()
                .find(|m| m.name == n)
                .unwrap_or_else(|| panic!("no {n}"))
        };
        assert_eq!(get("init").mode, 0o100755);
        assert_eq!(get("bin/busybox").data, b"BB");
        assert_eq!(get("lib/modules/virtio/virtio.ko").data, b"KO");
        assert_eq!(
            (get("dev/console").mode, get("dev/console").rdev),
            (0o020600, (5, 1))
        );
        for d in [
            "proc", "sys", "dev", "tmp", "bin", "sbin", "usr/bin", "usr/sbin", "etc", "root",
        ] {
            assert_eq!(get(d).mode & 0o170000, 0o040000, "{d} not a directory");
        }
        // Parents before children, or the kernel cannot create them.
        let pos = |n: &str| members.iter().position(|m| m.name == n).unwrap();
        assert!(
            pos("usr") < pos("usr/bin")
                && pos("dev") < pos("dev/console")
                && pos("bin") < pos("bin/busybox")
                && pos("lib/modules/virtio") < pos("lib/modules/virtio/virtio.ko")
        );
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
