//! The machine's own devices QEMU gives rhyve for its guests: a disk (virtio-blk-device) and
//! a network card (virtio-net-device), which the VMM drives and shares out as the guests'
//! virtio devices.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::sys;

/// Size of the scratch disk `run` makes when no disk is named.
pub const SCRATCH_DISK_MIB: u64 = 256;

/// A disk for the machine: `PATH` or `PATH,ro`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The raw image.
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
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
            }
            fs::File::create(&path)
                .and_then(|f| f.set_len(SCRATCH_DISK_MIB << 20))
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

    /// The QEMU arguments attaching it as the machine's virtio-blk-device.
    pub fn qemu_args(&self) -> Vec<OsString> {
        disk_args(&self.path, self.read_only)
            .into_iter()
            .map(Into::into)
            .collect()
    }
}

/// The QEMU arguments that attach `path` as the machine's virtio-blk-device.
pub fn disk_args(path: &Path, read_only: bool) -> Vec<String> {
    let ro = if read_only { ",readonly=on" } else { "" };
    vec![
        "-drive".into(),
        format!("if=none,id=disk0,format=raw,file={}{ro}", path.display()),
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
}
