//! A writer for the cpio "newc" format (the one the Linux kernel unpacks as an initramfs; see
//! the kernel's Documentation/driver-api/early-userspace/buffer-format.rst).
//!
//! Every member is written with uid/gid 0 and mtime 0, so the same inputs give the same bytes.

/// File-type bits of `st_mode`.
const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;

/// A newc archive being built in memory.
#[derive(Debug, Default)]
pub struct Writer {
    out: Vec<u8>,
    next_ino: u32,
}

impl Writer {
    /// An empty archive.
    pub fn new() -> Self {
        Self {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    /// One member: the 110-byte header, the name, the data, each padded to 4 bytes.
    fn entry(&mut self, name: &str, mode: u32, nlink: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let name = name.trim_start_matches('/');
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            u32::try_from(data.len()).expect("cpio newc members are < 4 GiB"),
            0, // devmajor
            0, // devminor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1, // with the NUL
            0,                     // check (only for the "070702" crc variant)
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    /// A directory; `perm` is the permission bits (e.g. 0o755).
    pub fn dir(&mut self, name: &str, perm: u32) {
        self.entry(name, S_IFDIR | perm, 2, (0, 0), &[]);
    }

    /// A regular file.
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | perm, 1, (0, 0), data);
    }

    /// A character device node `major:minor`.
    pub fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | perm, 1, (major, minor), &[]);
    }

    /// Ends the archive with the `TRAILER!!!` member and returns its bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, 1, (0, 0), &[]);
        self.out
    }
}

/// One member read back (for tests).
#[cfg(test)]
#[derive(Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    pub mode: u32,
    pub rdev: (u32, u32),
    pub data: Vec<u8>,
}

/// Reads a newc archive back, checking the format strictly (for tests).
#[cfg(test)]
pub fn read(mut b: &[u8]) -> Result<Vec<Member>, String> {
    let mut members = Vec::new();
    let total = b.len();
    loop {
        let at = total - b.len();
        if b.len() < 110 || &b[..6] != b"070701" {
            return Err(format!("no newc header at {at}"));
        }
        let field = |i: usize| {
            let s = std::str::from_utf8(&b[6 + 8 * i..14 + 8 * i]).map_err(|e| e.to_string())?;
            u32::from_str_radix(s, 16).map_err(|e| format!("field {i} at {at}: {e}"))
        };
        let (mode, filesize, rmaj, rmin, namesize) =
            (field(1)?, field(6)?, field(9)?, field(10)?, field(11)?);
        let name_end = 110 + namesize as usize;
        let name = b.get(110..name_end - 1).ok_or("truncated name")?;
        if b[name_end - 1] != 0 {
            return Err("name not NUL-terminated".into());
        }
        let name = String::from_utf8(name.to_vec()).map_err(|e| e.to_string())?;
        let data_start = name_end.next_multiple_of(4);
        let data_end = data_start + filesize as usize;
        let data = b
            .get(data_start..data_end)
            .ok_or("truncated data")?
            .to_vec();
        b = b
            .get(data_end.next_multiple_of(4)..)
            .ok_or("truncated padding")?;
        if name == "TRAILER!!!" {
            return Ok(members);
        }
        members.push(Member {
            name,
            mode,
            rdev: (rmaj, rmin),
            data,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut w = Writer::new();
        w.dir("/bin", 0o755);
        w.file("/bin/busybox", 0o755, b"\x7fELF not really");
        w.file("init", 0o755, b"#!/bin/busybox sh\n");
        w.dir("dev", 0o755);
        w.char_dev("/dev/console", 0o600, 5, 1);
        w.finish()
    }

    #[test]
    fn reads_back() {
        let bytes = sample();
        assert_eq!(bytes.len() % 4, 0);
        let m = read(&bytes).unwrap();
        let names: Vec<_> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["bin", "bin/busybox", "init", "dev", "dev/console"]);
        assert_eq!(m[1].mode, 0o100755);
        assert_eq!(m[1].data, b"\x7fELF not really");
        assert_eq!(m[3].mode, 0o040755);
        assert_eq!((m[4].mode, m[4].rdev), (0o020600, (5, 1)));
    }

    #[test]
    fn deterministic() {
        assert_eq!(sample(), sample());
    }

    /// Cross-checks with GNU cpio when the host has it.
    #[test]
    fn gnu_cpio_lists_it() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let Ok(mut child) = Command::new("cpio")
            .args(["-t", "-v", "--quiet"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        else {
            eprintln!("cpio not installed: cross-check skipped");
            return;
        };
        child.stdin.take().unwrap().write_all(&sample()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "cpio -t failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listing = String::from_utf8(out.stdout).unwrap();
        let lines: Vec<_> = listing.lines().collect();
        assert_eq!(lines.len(), 5, "{listing}");
        assert!(
            lines[1].starts_with("-rwxr-xr-x") && lines[1].ends_with("bin/busybox"),
            "{listing}"
        );
        assert!(
            lines[4].starts_with("crw-------")
                && lines[4].contains("5,")
                && lines[4].ends_with("dev/console"),
            "{listing}"
        );
    }
}
