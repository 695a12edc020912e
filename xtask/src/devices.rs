//! The machine's own devices QEMU gives rhyve for its guests: a disk (virtio-blk-device) and
//! a network card (virtio-net-device), which the VMM drives and shares out as the guests'
//! virtio devices.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::sys;

/// Size of the scratch disk `run` makes when no disk is named.
pub const SCRATCH_DISK_MIB: u64 = 256;

/// A disk for the machine: `PATH` or `PATH,ro`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The image: raw, or qcow2 (told by its magic; see [`ImageFormat`]).
    pub path: PathBuf,
    /// Attached read-only: the guest's disk refuses writes.
    pub read_only: bool,
}

impl Disk {
    /// Parses `--disk`'s value.
    pub fn parse(s: &str) -> Result<Self> {
        let (path, read_only) = match s.rsplit_once(',') {
            Some((p, "ro")) => (p, true),
            Some((p, "rw")) => (p, false),
            _ => (s, false),
        };
        if path.is_empty() {
            return Err(Error::Usage(format!(
                "--disk {s}: expected PATH or PATH,ro"
            )));
        }
        Ok(Self {
            path: PathBuf::from(path),
            read_only,
        })
    }

    /// The scratch disk `build/disk.img` (sparse, [`SCRATCH_DISK_MIB`]), made if missing.
    pub fn scratch() -> Result<Self> {
        let path = sys::build_dir().join("disk.img");
        if !path.is_file() {
            make_sparse(&path, SCRATCH_DISK_MIB << 20)
                .ctx(|| format!("creating the scratch disk {}", path.display()))?;
            println!(
                "xtask: made a {SCRATCH_DISK_MIB} MiB scratch disk {} (the guest's /dev/vda)",
                path.display()
            );
        }
        Ok(Self {
            path,
            read_only: false,
        })
    }

    /// The image at `path`, writable, as the VMs' descriptions name it: made sparse, `min_len`
    /// bytes, if it does not exist. An existing image is used as it is; if it is shorter than
    /// `min_len`, a warning says so (a slice past its end has no medium).
    pub fn named(path: &Path, min_len: u64) -> Result<Self> {
        match fs::metadata(path) {
            Ok(m) if m.len() < min_len => println!(
                "xtask: warning: {} is {}, short of the VMs' furthest slice end ({}): a slice \
                 past its end has no medium",
                path.display(),
                size_text(m.len()),
                size_text(min_len)
            ),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_sparse(path, min_len)
                    .ctx(|| format!("creating the machine's disk {}", path.display()))?;
                println!(
                    "xtask: made a sparse {} image {}, the machine's disk (the VMs' slices)",
                    size_text(min_len),
                    path.display()
                );
            }
            Err(e) => {
                return Err(Error::Io {
                    context: format!("reading {}", path.display()),
                    source: e,
                })
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            read_only: false,
        })
    }

    /// The QEMU arguments attaching it as the machine's virtio-blk-device.
    pub fn qemu_args(&self) -> Vec<OsString> {
        disk_args(&self.path, self.read_only)
            .into_iter()
            .map(Into::into)
            .collect()
    }
}

/// Creates the file `path` (and its directory), `len` bytes of holes.
fn make_sparse(path: &Path, len: u64) -> io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    fs::File::create_new(path)?.set_len(len)
}

/// A length for a message: "256 MiB", or the bytes when not whole MiB.
fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1 << 20;
    if bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// How a disk image is stored, as QEMU's `format=` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// The disk's bytes as they are.
    Raw,
    /// QEMU's copy-on-write format, as distributions publish cloud images.
    Qcow2,
}

impl ImageFormat {
    /// The first bytes of every qcow2 image: "QFI" and 0xfb (QEMU's docs/interop/qcow2.txt).
    const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";

    /// The format of the image at `path`, by its first bytes; raw when it is anything else
    /// or cannot be read (a missing image is made raw).
    pub fn of(path: &Path) -> Self {
        let mut magic = [0u8; 4];
        let read = fs::File::open(path).and_then(|mut f| io::Read::read_exact(&mut f, &mut magic));
        match read {
            Ok(()) if magic == Self::QCOW2_MAGIC => Self::Qcow2,
            _ => Self::Raw,
        }
    }

    /// QEMU's name for it.
    fn qemu_name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
        }
    }
}

/// The QEMU arguments that attach `path` as the machine's virtio-blk-device, in its format.
pub fn disk_args(path: &Path, read_only: bool) -> Vec<String> {
    let ro = if read_only { ",readonly=on" } else { "" };
    let format = ImageFormat::of(path).qemu_name();
    vec![
        "-drive".into(),
        format!(
            "if=none,id=disk0,format={format},file={}{ro}",
            path.display()
        ),
        "-device".into(),
        "virtio-blk-device,drive=disk0".into(),
    ]
}

/// The QEMU arguments for the machine's network card on QEMU user networking (the guest
/// side is 10.0.2.0/24, the host 10.0.2.2).
pub fn net_args() -> Vec<String> {
    vec![
        "-netdev".into(),
        "user,id=net0".into(),
        "-device".into(),
        "virtio-net-device,netdev=net0".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qcow2_images_are_attached_as_qcow2() {
        let dir = std::env::temp_dir().join(format!("rhyve-devices-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let qcow2 = dir.join("cloud.qcow2");
        let mut header = b"QFI\xfb".to_vec();
        header.extend_from_slice(&[0, 0, 0, 3]);
        fs::write(&qcow2, &header).unwrap();
        let raw = dir.join("disk.img");
        fs::write(&raw, [0u8; 512]).unwrap();
        assert_eq!(ImageFormat::of(&qcow2), ImageFormat::Qcow2);
        assert_eq!(ImageFormat::of(&raw), ImageFormat::Raw);
        assert_eq!(ImageFormat::of(&dir.join("missing.img")), ImageFormat::Raw);
        assert!(disk_args(&qcow2, false)[1].contains("format=qcow2,file="));
        assert!(disk_args(&raw, true)[1].contains("format=raw,file="));
        let _ = fs::remove_dir_all(dir);
    }

    #[test]
    fn disk_options_parse() {
        assert_eq!(
            Disk::parse("a/b.img").unwrap(),
            Disk {
                path: "a/b.img".into(),
                read_only: false
            }
        );
        assert_eq!(
            Disk::parse("x,y.img,ro").unwrap(),
            Disk {
                path: "x,y.img".into(),
                read_only: true
            }
        );
        assert!(Disk::parse(",ro").is_err());
        let args = disk_args(Path::new("d.img"), true);
        assert_eq!(
            args[1],
            "if=none,id=disk0,format=raw,file=d.img,readonly=on"
        );
        assert_eq!(args[3], "virtio-blk-device,drive=disk0");
    }

    #[test]
    fn a_named_image_is_made_sparse_once_and_then_kept() {
        let dir = std::env::temp_dir().join(format!("rhyve-xtask-named-{}", std::process::id()));
        let path = dir.join("sub/vms.img");
        let disk = Disk::named(&path, 3 << 20).unwrap();
        assert_eq!(
            disk,
            Disk {
                path: path.clone(),
                read_only: false
            }
        );
        assert_eq!(fs::metadata(&path).unwrap().len(), 3 << 20);
        // An existing image, even a short one, is kept as it is.
        fs::write(&path, b"data").unwrap();
        Disk::named(&path, 3 << 20).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"data");
        fs::remove_dir_all(&dir).unwrap();
    }
}
