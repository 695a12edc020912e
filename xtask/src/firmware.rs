//! Guest firmware and the disks it boots: U-Boot and EDK2 (UEFI) for QEMU virt, GRUB for
//! arm64 UEFI, all from Debian's archive, and disk images holding the test guest's kernel and
//! initramfs with each loader's configuration, in `build/firmware/`.
//!
//! The packages are fetched with `apt-get download` (never pinned: whatever the archive has
//! today) and unpacked with `dpkg-deb -x`, nothing installed system-wide but the host tools
//! that build the disks: mtools (a FAT file system written into an image file, no loop
//! mount), u-boot-tools (`mkimage`, for a boot script) and grub-common
//! (`grub-mkstandalone`, given the unpacked arm64-efi modules). The partition tables are
//! written here ([`crate::partition`]). Each output has a `.key` beside it naming its inputs,
//! as the guest's files do, and is rebuilt only when they change.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, IoContext, Result};
use crate::guest::{self, GuestFiles};
use crate::partition::{self, Table, SECTOR};
use crate::sys;

/// A Debian package and the file or directory in it that we use.
struct Package {
    name: &'static str,
    /// `all` for an architecture-independent package.
    arch: &'static str,
    /// The path inside the package.
    path: &'static str,
}

/// U-Boot for QEMU virt's arm64 machine: runs from flash at address 0.
const UBOOT: Package = Package {
    name: "u-boot-qemu",
    arch: "all",
    path: "usr/lib/u-boot/qemu_arm64/u-boot.bin",
};
/// EDK2's ArmVirtQemu, the UEFI firmware for QEMU virt (2 MiB; its variables go to the
/// second flash bank).
const EDK2: Package = Package {
    name: "qemu-efi-aarch64",
    arch: "all",
    path: "usr/share/qemu-efi-aarch64/QEMU_EFI.fd",
};
/// GRUB's arm64-efi modules, for `grub-mkstandalone -d`.
const GRUB_MODULES: Package = Package {
    name: "grub-efi-arm64-bin",
    arch: "arm64",
    path: "usr/lib/grub/arm64-efi",
};

/// The host programs that build the disks, and the Debian package of each.
const HOST_TOOLS: &[(&str, &str)] = &[
    ("mformat", "mtools"),
    ("mmd", "mtools"),
    ("mcopy", "mtools"),
    ("mkimage", "u-boot-tools"),
    ("grub-mkstandalone", "grub-common"),
];

/// Bumped when what goes on the disks changes in a way their keys do not show.
const DISK_LAYOUT: u32 = 1;
/// The smallest partition: FAT32 needs 65525 clusters, which 512-byte clusters give from
/// 33 MiB on; some room above that.
const MIN_PART_BYTES: u64 = 64 << 20;
/// GRUB modules the standalone image needs for its grub.cfg: found in its memdisk, not read
/// from the ESP.
const GRUB_MODULE_LIST: &str = "part_gpt part_msdos fat search search_fs_file linux echo normal";

/// The fetched firmware.
#[derive(Debug, Clone)]
pub struct Firmware {
    /// U-Boot (`u-boot.bin`).
    pub uboot: PathBuf,
    /// EDK2 (`QEMU_EFI.fd`).
    pub edk2: PathBuf,
    /// GRUB's arm64-efi module directory.
    grub_modules: PathBuf,
}

/// `build/firmware/`.
pub fn dir() -> PathBuf {
    sys::build_dir().join("firmware")
}

/// Makes sure the firmware packages are unpacked in `build/firmware/` and the host tools are
/// installed.
pub fn fetch() -> Result<Firmware> {
    if !sys::is_debian() {
        return Err(Error::Failed(
            "fetching firmware needs a Debian-family host (apt and dpkg fetch Debian's U-Boot, \
             EDK2 and GRUB); elsewhere, pass --firmware PATH to `cargo xtask run`"
                .into(),
        ));
    }
    ensure_tools()?;
    guest::ensure_arm64_architecture()?;
    Ok(Firmware {
        uboot: unpacked(&UBOOT)?,
        edk2: unpacked(&EDK2)?,
        grub_modules: unpacked(&GRUB_MODULES)?,
    })
}

/// Installs the missing [`HOST_TOOLS`] with apt, or says which to install.
fn ensure_tools() -> Result<()> {
    sys::ensure_programs(HOST_TOOLS, "building the firmware disks")
}

/// `pkg`'s [`Package::path`], from the package unpacked in `build/firmware/NAME/` (downloaded
/// and unpacked again when the archive has another version).
fn unpacked(pkg: &Package) -> Result<PathBuf> {
    let debs = dir().join("debs");
    fs::create_dir_all(&debs).ctx(|| format!("creating {}", debs.display()))?;
    let deb = guest::download_arch(pkg.name, pkg.arch, &debs)?;
    let root = dir().join(pkg.name);
    let key = guest::deb_key(&deb)?;
    let wanted = root.join(pkg.path);
    let key_file = guest::key_path(&root);
    if !(wanted.exists() && fs::read_to_string(&key_file).is_ok_and(|k| k == key)) {
        println!("xtask: unpacking {}", deb.display());
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).ctx(|| format!("creating {}", root.display()))?;
        sys::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        fs::write(&key_file, &key).ctx(|| format!("writing {}", key_file.display()))?;
    }
    if !wanted.exists() {
        return Err(Error::Failed(format!(
            "{} has no {}",
            deb.display(),
            pkg.path
        )));
    }
    Ok(wanted)
}

/// How a disk's partition is described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// An MBR, one active FAT32 partition: U-Boot's distro boot.
    Mbr,
    /// A GPT, one EFI system partition.
    Gpt,
}

/// The disks the firmware boots: the tests' (whose guest reports and powers off) and the ones
/// `run --firmware` is shown with (whose guest is the interactive busybox shell).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskKind {
    /// U-Boot's distro boot finds `/extlinux/extlinux.conf`.
    UbootExtlinux,
    /// U-Boot's distro boot finds `/boot.scr`, which loads the kernel and `booti`s it.
    UbootScript,
    /// UEFI finds `/EFI/BOOT/BOOTAA64.EFI`, GRUB, whose grub.cfg boots Linux.
    Uefi,
    /// As [`DiskKind::Uefi`], the guest's command line asking for the EFI variable test.
    UefiEfivar,
    /// As [`DiskKind::UbootExtlinux`], booting the guest to its shell.
    UbootShell,
    /// As [`DiskKind::Uefi`], booting the guest to its shell.
    UefiShell,
}

/// What on a disk boots the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loader {
    Extlinux,
    Script,
    Grub,
}

impl DiskKind {
    /// The image's file name in `build/firmware/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Self::UbootExtlinux => "uboot-extlinux-test.img",
            Self::UbootScript => "uboot-script-test.img",
            Self::Uefi => "uefi-test.img",
            Self::UefiEfivar => "uefi-efivar-test.img",
            Self::UbootShell => "uboot.img",
            Self::UefiShell => "uefi.img",
        }
    }

    /// The image's path.
    pub fn path(self) -> PathBuf {
        dir().join(self.file_name())
    }

    /// The TAG of the test guest's `rhyve.boot=TAG`: which configuration booted it.
    pub fn tag(self) -> &'static str {
        match self.loader() {
            Loader::Extlinux => "uboot-extlinux",
            Loader::Script => "uboot-script",
            Loader::Grub => "uefi-grub",
        }
    }

    /// The guest's command line.
    pub fn cmdline(self) -> String {
        match self {
            Self::UbootShell | Self::UefiShell => "console=ttyAMA0".into(),
            Self::UefiEfivar => format!("console=ttyAMA0 rhyve.boot={} rhyve.efivar=1", self.tag()),
            _ => format!("console=ttyAMA0 rhyve.boot={}", self.tag()),
        }
    }

    fn loader(self) -> Loader {
        match self {
            Self::UbootExtlinux | Self::UbootShell => Loader::Extlinux,
            Self::UbootScript => Loader::Script,
            Self::Uefi | Self::UefiEfivar | Self::UefiShell => Loader::Grub,
        }
    }

    fn scheme(self) -> Scheme {
        match self.loader() {
            Loader::Extlinux | Loader::Script => Scheme::Mbr,
            Loader::Grub => Scheme::Gpt,
        }
    }
}

/// Where the kernel and initramfs go on every disk.
const KERNEL_ON_DISK: &str = "/Image";
const INITRD_ON_DISK: &str = "/initramfs";

/// U-Boot's extlinux.conf (its `pxe_utils`/syslinux format): one entry, no menu wait. With no
/// `fdt` line U-Boot passes the tree it has (`fdt_addr`, QEMU's or rhyve's).
pub fn extlinux_conf(cmdline: &str) -> String {
    format!(
        "# rhyve test guest (cargo xtask)\n\
         default rhyve\n\
         timeout 0\n\
         label rhyve\n\
         \x20 kernel {KERNEL_ON_DISK}\n\
         \x20 initrd {INITRD_ON_DISK}\n\
         \x20 append {cmdline}\n"
    )
}

/// The line the boot script echoes before loading anything.
pub const SCRIPT_MARKER: &str = "RHYVE-UBOOT-SCRIPT";

/// U-Boot's boot script: loads kernel and initramfs from the partition distro boot found it
/// on (`devtype`, `devnum`, `distro_bootpart`) and boots them with `booti`, passing U-Boot's
/// own device tree (`fdtcontroladdr`: the one it was given, QEMU's or rhyve's).
pub fn boot_script(cmdline: &str) -> String {
    let part = "${devtype} ${devnum}:${distro_bootpart}";
    format!(
        "# rhyve test guest (cargo xtask): mkimage -T script makes boot.scr of this\n\
         echo {SCRIPT_MARKER} {part}\n\
         load {part} ${{kernel_addr_r}} {KERNEL_ON_DISK}\n\
         load {part} ${{ramdisk_addr_r}} {INITRD_ON_DISK}\n\
         setenv bootargs \"{cmdline}\"\n\
         booti ${{kernel_addr_r}} ${{ramdisk_addr_r}}:${{filesize}} ${{fdtcontroladdr}}\n"
    )
}

/// The line GRUB's configuration echoes first.
pub const GRUB_MARKER: &str = "RHYVE-GRUB-CFG";

/// The grub.cfg embedded in the standalone GRUB: finds the ESP by the kernel on it and boots
/// that kernel and initramfs at once.
pub fn grub_cfg(cmdline: &str) -> String {
    format!(
        "# rhyve test guest (cargo xtask)\n\
         set timeout=0\n\
         set default=0\n\
         echo {GRUB_MARKER}\n\
         search --no-floppy --set=root --file {KERNEL_ON_DISK}\n\
         menuentry \"rhyve test guest\" {{\n\
         \x20 echo 'Loading Linux ...'\n\
         \x20 linux {KERNEL_ON_DISK} {cmdline}\n\
         \x20 echo 'Loading initramfs ...'\n\
         \x20 initrd {INITRD_ON_DISK}\n\
         }}\n"
    )
}

/// What a file on a disk is made of.
pub enum Content {
    /// A host file.
    File(PathBuf),
    /// These bytes.
    Bytes(Vec<u8>),
}

/// The cache key of a host file: its own `.key` (the inputs it was made from) if it has one,
/// else its size and modification time.
fn file_key(path: &Path) -> Result<String> {
    if let Ok(k) = fs::read_to_string(guest::key_path(path)) {
        return Ok(k);
    }
    let m = fs::metadata(path).ctx(|| format!("reading {}", path.display()))?;
    let mtime = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{} {mtime}", m.len()))
}

/// Makes sure the disk `kind` is current for `guest`'s kernel and initramfs; its path.
pub fn disk(kind: DiskKind, guest: &GuestFiles, fw: &Firmware) -> Result<PathBuf> {
    let cmdline = kind.cmdline();
    let mut files = vec![
        (
            KERNEL_ON_DISK.to_string(),
            Content::File(guest.kernel.clone()),
        ),
        (
            INITRD_ON_DISK.to_string(),
            Content::File(guest.initrd.clone()),
        ),
    ];
    match kind.loader() {
        Loader::Extlinux => files.push((
            "/extlinux/extlinux.conf".into(),
            Content::Bytes(extlinux_conf(&cmdline).into_bytes()),
        )),
        Loader::Script => files.push((
            "/boot.scr".into(),
            Content::File(boot_scr(&boot_script(&cmdline))?),
        )),
        Loader::Grub => files.push((
            "/EFI/BOOT/BOOTAA64.EFI".into(),
            Content::File(standalone_grub(fw, kind, &grub_cfg(&cmdline))?),
        )),
    }
    let mut key = format!("layout:{DISK_LAYOUT}");
    for (dest, content) in &files {
        let k = match content {
            Content::File(p) => file_key(p)?,
            Content::Bytes(b) => format!("{:016x}", guest::fnv1a(b)),
        };
        key.push_str(&format!("\n{dest} {}", k.trim()));
    }
    let out = kind.path();
    if guest::is_current(&out, &key) {
        return Ok(out);
    }
    println!("xtask: building {}", out.display());
    build_disk(&out, kind.scheme(), &files, guest::fnv1a(key.as_bytes()))?;
    fs::write(guest::key_path(&out), &key)
        .ctx(|| format!("writing {}", guest::key_path(&out).display()))?;
    Ok(out)
}

/// `build/firmware/boot.scr` of `script`, by `mkimage -T script`.
pub fn boot_scr(script: &str) -> Result<PathBuf> {
    let stage = dir().join("stage");
    fs::create_dir_all(&stage).ctx(|| format!("creating {}", stage.display()))?;
    let cmd = stage.join("boot.cmd");
    let scr = stage.join("boot.scr");
    let key = format!("{:016x}", guest::fnv1a(script.as_bytes()));
    if guest::is_current(&scr, &key) {
        return Ok(scr);
    }
    fs::write(&cmd, script).ctx(|| format!("writing {}", cmd.display()))?;
    sys::run(
        Command::new("mkimage")
            .args(["-A", "arm64", "-O", "linux", "-T", "script", "-C", "none"])
            .args(["-n", "rhyve test guest"])
            .arg("-d")
            .arg(&cmd)
            .arg(&scr)
            .stdout(std::process::Stdio::null()),
    )?;
    fs::write(guest::key_path(&scr), &key)
        .ctx(|| format!("writing {}", guest::key_path(&scr).display()))?;
    Ok(scr)
}

/// A standalone GRUB for arm64 UEFI (`grub-mkstandalone -O arm64-efi`) whose memdisk holds
/// `cfg` as its grub.cfg and the modules it needs.
fn standalone_grub(fw: &Firmware, kind: DiskKind, cfg: &str) -> Result<PathBuf> {
    let stage = dir().join("stage");
    fs::create_dir_all(&stage).ctx(|| format!("creating {}", stage.display()))?;
    let cfg_path = stage.join(format!("grub-{}.cfg", kind.file_name()));
    let efi = stage.join(format!("grub-{}.efi", kind.file_name()));
    let key = format!(
        "{} cfg:{:016x} modules:{GRUB_MODULE_LIST}",
        file_key(&fw.grub_modules.join("kernel.img"))?,
        guest::fnv1a(cfg.as_bytes())
    );
    if guest::is_current(&efi, &key) {
        return Ok(efi);
    }
    fs::write(&cfg_path, cfg).ctx(|| format!("writing {}", cfg_path.display()))?;
    let mut graft = std::ffi::OsString::from("boot/grub/grub.cfg=");
    graft.push(&cfg_path);
    sys::run(
        Command::new("grub-mkstandalone")
            .args(["-O", "arm64-efi"])
            .arg("-d")
            .arg(&fw.grub_modules)
            .args(["--locales=", "--fonts=", "--themes="])
            .arg(format!("--modules={GRUB_MODULE_LIST}"))
            .arg(format!("--install-modules={GRUB_MODULE_LIST}"))
            .arg("-o")
            .arg(&efi)
            .arg(graft),
    )?;
    fs::write(guest::key_path(&efi), &key)
        .ctx(|| format!("writing {}", guest::key_path(&efi).display()))?;
    Ok(efi)
}

/// The partition's size for `content_bytes` of files: a quarter and 8 MiB spare, whole MiB,
/// at least [`MIN_PART_BYTES`]; in sectors.
pub fn partition_sectors(content_bytes: u64) -> u64 {
    let want = content_bytes + content_bytes / 4 + (8 << 20);
    want.next_multiple_of(1 << 20).max(MIN_PART_BYTES) / SECTOR
}

/// Writes the disk `out`: the table of `scheme`, one FAT32 partition holding `files`.
/// `seed` makes the disk's identifiers.
pub fn build_disk(
    out: &Path,
    scheme: Scheme,
    files: &[(String, Content)],
    seed: u64,
) -> Result<()> {
    let stage = dir().join("stage");
    fs::create_dir_all(&stage).ctx(|| format!("creating {}", stage.display()))?;
    let mut sources = Vec::new();
    let mut bytes = 0;
    for (i, (dest, content)) in files.iter().enumerate() {
        let src = match content {
            Content::File(p) => p.clone(),
            Content::Bytes(b) => {
                let p = stage.join(format!("file{i}"));
                fs::write(&p, b).ctx(|| format!("writing {}", p.display()))?;
                p
            }
        };
        bytes += fs::metadata(&src)
            .ctx(|| format!("reading {}", src.display()))?
            .len();
        sources.push((dest.as_str(), src));
    }
    let part = partition_sectors(bytes);
    let (table, disk_sectors, label): (Table, u64, &str) = match scheme {
        Scheme::Mbr => (
            partition::mbr(partition::MBR_FAT32_LBA, part, seed as u32),
            partition::mbr_disk_sectors(part),
            "RHYVE",
        ),
        Scheme::Gpt => (
            partition::gpt(partition::GPT_ESP, "EFI system partition", part, seed),
            partition::gpt_disk_sectors(part),
            "ESP",
        ),
    };
    let tmp = out.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    write_table(&tmp, disk_sectors, &table).ctx(|| format!("writing {}", tmp.display()))?;
    // mtools addresses the partition inside the image file as IMAGE@@OFFSET.
    let mut image = tmp.as_os_str().to_owned();
    image.push(format!("@@{}", partition::FIRST_LBA * SECTOR));
    let mtools = |prog: &str| {
        let mut c = Command::new(prog);
        // The partition's sector count need not be whole "cylinders" of the made-up geometry.
        c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(&image);
        c
    };
    sys::run(
        mtools("mformat")
            .arg("-F")
            .args(["-T", &part.to_string(), "-h", "64", "-s", "32"])
            .args(["-H", &partition::FIRST_LBA.to_string(), "-v", label, "::"]),
    )?;
    let mut dirs: Vec<String> = Vec::new();
    for (dest, _) in &sources {
        let mut at = String::new();
        let parts: Vec<&str> = dest.trim_start_matches('/').split('/').collect();
        for d in &parts[..parts.len() - 1] {
            at = format!("{at}/{d}");
            if !dirs.contains(&at) {
                sys::run(mtools("mmd").arg(format!("::{at}")))?;
                dirs.push(at.clone());
            }
        }
    }
    for (dest, src) in &sources {
        sys::run(mtools("mcopy").arg(src).arg(format!("::{dest}")))?;
    }
    fs::rename(&tmp, out).ctx(|| format!("renaming {} to {}", tmp.display(), out.display()))
}

/// Creates `path`, `sectors` long (sparse), with `table`'s sectors written.
fn write_table(path: &Path, sectors: u64, table: &Table) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = fs::File::create(path)?;
    f.set_len(sectors * SECTOR)?;
    for (lba, bytes) in &table.writes {
        f.seek(SeekFrom::Start(lba * SECTOR))?;
        f.write_all(bytes)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_loader_s_configuration_boots_the_disk_s_kernel_with_its_command_line() {
        let cmdline = DiskKind::UbootExtlinux.cmdline();
        assert_eq!(cmdline, "console=ttyAMA0 rhyve.boot=uboot-extlinux");
        let ext = extlinux_conf(&cmdline);
        for l in [
            "default rhyve",
            "timeout 0",
            "label rhyve",
            "  kernel /Image",
            "  initrd /initramfs",
            "  append console=ttyAMA0 rhyve.boot=uboot-extlinux",
        ] {
            assert!(ext.lines().any(|x| x == l), "{l:?} not in\n{ext}");
        }

        let script = boot_script(&DiskKind::UbootScript.cmdline());
        assert!(script
            .contains("load ${devtype} ${devnum}:${distro_bootpart} ${kernel_addr_r} /Image\n"));
        assert!(script.contains("setenv bootargs \"console=ttyAMA0 rhyve.boot=uboot-script\"\n"));
        assert!(script
            .contains("booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}\n"));
        // The initrd's size is the last load's: the initramfs must be loaded last.
        let last_load = script.lines().rfind(|l| l.starts_with("load "));
        assert!(
            last_load.is_some_and(|l| l.ends_with(INITRD_ON_DISK)),
            "{script}"
        );

        let cfg = grub_cfg(&DiskKind::UefiEfivar.cmdline());
        assert!(cfg.contains("set timeout=0\n"), "{cfg}");
        assert!(
            cfg.contains("  linux /Image console=ttyAMA0 rhyve.boot=uefi-grub rhyve.efivar=1\n")
        );
        assert!(cfg.contains("  initrd /initramfs\n"));
        assert_eq!(cfg.matches('{').count(), cfg.matches('}').count());
        assert!(!grub_cfg(&DiskKind::Uefi.cmdline()).contains("efivar"));
    }

    #[test]
    fn partitions_hold_their_files_and_fat32() {
        assert_eq!(partition_sectors(0), (64 << 20) / 512);
        let big = partition_sectors(100 << 20);
        assert!(
            big * 512 >= (125 << 20) + (8 << 20) && big.is_multiple_of(2048),
            "{big}"
        );
    }

    #[test]
    fn every_disk_has_its_own_file() {
        let kinds = [
            DiskKind::UbootExtlinux,
            DiskKind::UbootScript,
            DiskKind::Uefi,
            DiskKind::UefiEfivar,
            DiskKind::UbootShell,
            DiskKind::UefiShell,
        ];
        let mut names: Vec<_> = kinds.iter().map(|k| k.file_name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), kinds.len());
        // The shell disks' guest neither reports nor powers off by itself.
        for k in [DiskKind::UbootShell, DiskKind::UefiShell] {
            assert!(!k.cmdline().contains("rhyve."), "{k:?}");
        }
    }
}
