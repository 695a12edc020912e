//! A [`VmDesc`] written back as a `[[vm]]` table.

use super::{size_unit, Source, VmDesc, MAX_CPU};
use alloc::string::String;
use core::fmt::{self, Write as _};

impl VmDesc {
    /// This VM as a `[[vm]]` table that [`parse`] reads back as the same `VmDesc` (when the
    /// description is one `parse` accepts). Defaults are written out too.
    pub fn to_toml(&self) -> String {
        let mut s = String::from("[[vm]]\n");
        // Writing to a String cannot fail.
        let _ = self.write_toml(&mut s);
        s
    }

    fn write_toml(&self, s: &mut String) -> fmt::Result {
        writeln!(s, "name = {}", Quoted(&self.name))?;
        writeln!(s, "vcpus = {}", self.vcpus)?;
        if let Some(mask) = self.cpus {
            s.push_str("cpus = [");
            let mut first = true;
            for cpu in (0..=MAX_CPU).filter(|c| mask & (1 << c) != 0) {
                if !first {
                    s.push_str(", ");
                }
                first = false;
                write!(s, "{cpu}")?;
            }
            s.push_str("]\n");
        }
        writeln!(s, "memory = {}", Size(self.mem_size))?;
        if let Some(kernel) = &self.kernel {
            writeln!(s, "kernel = {kernel}")?;
        }
        if let Some(firmware) = &self.firmware {
            writeln!(s, "firmware = {firmware}")?;
        }
        if let Some(initrd) = &self.initrd {
            writeln!(s, "initrd = {initrd}")?;
        }
        writeln!(s, "cmdline = {}", Quoted(&self.cmdline))?;
        s.push_str("devices = [");
        for (i, name) in self.devices.names().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            write!(s, "\"{name}\"")?;
        }
        s.push_str("]\n");
        if let Some(d) = &self.disk {
            s.push_str("disk = { ");
            if let Some(file) = &d.file {
                write!(s, "file = {}, ", Quoted(file))?;
            }
            if d.offset != 0 {
                write!(s, "offset = {}, ", Size(d.offset))?;
            }
            if let Some(n) = d.size {
                write!(s, "size = {}, ", Size(n))?;
            }
            // `readonly` is always written, so the table is never empty.
            writeln!(s, "readonly = {} }}", d.readonly)?;
        }
        if let Some(v) = &self.vars {
            writeln!(
                s,
                "vars = {{ offset = {}, size = {} }}",
                Size(v.offset),
                Size(v.size)
            )?;
        }
        if let Some(m) = self.mac {
            writeln!(s, "mac = \"{m}\"")?;
        }
        writeln!(s, "autostart = {}", self.autostart)
    }

    /// The names of the boot bundle's files this VM needs (its kernel or firmware, then its
    /// initrd).
    pub fn bundle_files(&self) -> impl Iterator<Item = &str> {
        [
            self.kernel.as_ref(),
            self.firmware.as_ref(),
            self.initrd.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|s| match s {
            Source::Bundle(name) => Some(name.as_str()),
            Source::Memory { .. } => None,
        })
    }
}

impl fmt::Display for Source {
    /// As a TOML value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bundle(name) => write!(f, "{}", Quoted(name)),
            Self::Memory { addr, size } => write!(f, "{{ addr = {addr:#x}, size = {size:#x} }}"),
        }
    }
}

/// A size as a TOML value: `"256M"` when a unit divides it, else the bytes.
struct Size(u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match size_unit(self.0) {
            Some((n, unit)) => write!(f, "\"{n}{unit}\""),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A string as a TOML basic string.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\t' => f.write_str("\\t")?,
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}
