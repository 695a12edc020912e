//! The keys of a `[[vm]]` table: each value's type and range.

use super::syntax::{found, Value};
use super::*;
use alloc::format;
use alloc::string::{String, ToString};

/// The keys of a `[[vm]]` table.
const KEYS: [&str; 13] = [
    "name",
    "vcpus",
    "cpus",
    "memory",
    "kernel",
    "firmware",
    "initrd",
    "cmdline",
    "devices",
    "disk",
    "vars",
    "mac",
    "autostart",
];

/// A field refused: which (`kernel.size` for a key of an inline table) and why.
pub(super) struct Refusal {
    pub(super) field: String,
    pub(super) reason: String,
}

fn refuse(field: &str, reason: impl Into<String>) -> Refusal {
    Refusal {
        field: field.to_string(),
        reason: reason.into(),
    }
}

fn expected(field: &str, what: &str, v: &Value<'_>) -> Refusal {
    refuse(field, format!("expected {what}, found {}", v.kind()))
}

/// The fields of one VM as they are read.
#[derive(Default)]
pub(super) struct Fields {
    pub(super) name: Option<String>,
    pub(super) vcpus: Option<u32>,
    pub(super) cpus: Option<u64>,
    pub(super) mem_size: Option<u64>,
    pub(super) kernel: Option<Source>,
    pub(super) firmware: Option<Source>,
    pub(super) initrd: Option<Source>,
    pub(super) cmdline: Option<String>,
    pub(super) devices: Option<DeviceSet>,
    pub(super) disk: Option<Disk>,
    pub(super) vars: Option<Vars>,
    pub(super) mac: Option<Mac>,
    pub(super) autostart: Option<bool>,
}

impl Fields {
    /// Reads `key = v` into its field.
    pub(super) fn set(&mut self, key: &str, v: &Value<'_>) -> Result<(), Refusal> {
        match key {
            "name" => self.name = Some(name(v)?),
            "vcpus" => self.vcpus = Some(vcpus(v)?),
            "cpus" => self.cpus = Some(cpus(v)?),
            "memory" => self.mem_size = Some(memory(v)?),
            "kernel" => self.kernel = Some(source("kernel", v)?),
            "firmware" => self.firmware = Some(source("firmware", v)?),
            "initrd" => self.initrd = Some(source("initrd", v)?),
            "cmdline" => match v {
                Value::Str(s) => self.cmdline = Some(s.clone()),
                v => return Err(expected("cmdline", "a string", v)),
            },
            "devices" => self.devices = Some(devices(v)?),
            "disk" => self.disk = Some(disk(v)?),
            "vars" => self.vars = Some(vars(v)?),
            "mac" => self.mac = Some(mac(v)?),
            "autostart" => match v {
                Value::Bool(b) => self.autostart = Some(*b),
                v => return Err(expected("autostart", "a boolean", v)),
            },
            _ => {
                return Err(refuse(
                    key,
                    format!("unknown key (known: {})", KEYS.join(", ")),
                ))
            }
        }
        Ok(())
    }
}

pub(super) fn name(v: &Value<'_>) -> Result<String, Refusal> {
    let Value::Str(s) = v else {
        return Err(expected("name", "a string", v));
    };
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if s.is_empty() || s.len() > MAX_NAME || !s.chars().all(ok_char) {
        return Err(refuse(
            "name",
            format!(
                "{} is not 1 to {MAX_NAME} characters of a-z, 0-9, _ and -",
                found(s)
            ),
        ));
    }
    Ok(s.clone())
}

fn vcpus(v: &Value<'_>) -> Result<u32, Refusal> {
    match v {
        Value::Int(n) if (1..=u64::from(MAX_VCPUS)).contains(n) => Ok(*n as u32),
        Value::Int(n) => Err(refuse(
            "vcpus",
            format!("{n} is out of range (1..={MAX_VCPUS})"),
        )),
        v => Err(expected("vcpus", "an integer", v)),
    }
}

fn cpus(v: &Value<'_>) -> Result<u64, Refusal> {
    let Value::Array(items) = v else {
        return Err(expected("cpus", "an array of CPU numbers", v));
    };
    if items.is_empty() {
        return Err(refuse(
            "cpus",
            "empty: name at least one CPU, or leave cpus out for any",
        ));
    }
    let mut mask = 0u64;
    for item in items {
        let Value::Int(cpu) = item else {
            return Err(expected("cpus", "an array of CPU numbers", v));
        };
        if *cpu > MAX_CPU {
            return Err(refuse(
                "cpus",
                format!("CPU {cpu} is out of range (0..={MAX_CPU})"),
            ));
        }
        if mask & (1 << cpu) != 0 {
            return Err(refuse("cpus", format!("CPU {cpu} listed twice")));
        }
        mask |= 1 << cpu;
    }
    Ok(mask)
}

/// A size in bytes: `"256M"`, `"1G"`, `"65536K"` or an integer.
fn size(field: &str, v: &Value<'_>) -> Result<u64, Refusal> {
    match v {
        Value::Int(n) => Ok(*n),
        Value::Str(s) => size_string(s).ok_or_else(|| {
            refuse(
                field,
                format!(
                    "expected a size like \"256M\", \"1G\" or \"65536K\", found {}",
                    found(s)
                ),
            )
        }),
        v => Err(expected(field, "a size (\"256M\") or bytes", v)),
    }
}

fn memory(v: &Value<'_>) -> Result<u64, Refusal> {
    let bytes = size("memory", v)?;
    if !bytes.is_multiple_of(MEM_ALIGN) {
        return Err(refuse(
            "memory",
            format!(
                "{} is not a multiple of {}",
                human_size(bytes),
                human_size(MEM_ALIGN)
            ),
        ));
    }
    if !(MIN_MEM..=MAX_MEM).contains(&bytes) {
        return Err(refuse(
            "memory",
            format!(
                "{} is out of range ({}..={})",
                human_size(bytes),
                human_size(MIN_MEM),
                human_size(MAX_MEM)
            ),
        ));
    }
    Ok(bytes)
}

/// `"256M"`, `"1G"`, `"65536K"`: decimal digits and a binary unit; `None` if not that or
/// too large.
fn size_string(s: &str) -> Option<u64> {
    let unit = match s.as_bytes().last()? {
        b'K' => KIB,
        b'M' => MIB,
        b'G' => GIB,
        _ => return None,
    };
    // The last byte is ASCII, so the rest ends on a character boundary.
    let digits = &s[..s.len() - 1];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

fn source(field: &str, v: &Value<'_>) -> Result<Source, Refusal> {
    const WHAT: &str = "a file name or { addr = .., size = .. }";
    match v {
        Value::Str(s) if s.is_empty() => Err(refuse(field, "empty file name")),
        Value::Str(s) => Ok(Source::Bundle(s.clone())),
        Value::Table(entries) => {
            let mut addr = None;
            let mut size = None;
            for (k, value) in entries {
                let sub = format!("{field}.{k}");
                let slot = match *k {
                    "addr" => &mut addr,
                    "size" => &mut size,
                    _ => return Err(refuse(&sub, "unknown key (known: addr, size)")),
                };
                match value {
                    Value::Int(n) => *slot = Some(*n),
                    v => return Err(expected(&sub, "an integer", v)),
                }
            }
            let addr = addr.ok_or_else(|| refuse(&format!("{field}.addr"), "missing"))?;
            let size = size.ok_or_else(|| refuse(&format!("{field}.size"), "missing"))?;
            if size == 0 {
                return Err(refuse(&format!("{field}.size"), "must not be zero"));
            }
            if addr.checked_add(size).is_none() {
                return Err(refuse(
                    field,
                    format!("{addr:#x} + {size:#x} is past the end of the address space"),
                ));
            }
            Ok(Source::Memory { addr, size })
        }
        v => Err(expected(field, WHAT, v)),
    }
}

fn devices(v: &Value<'_>) -> Result<DeviceSet, Refusal> {
    let Value::Array(items) = v else {
        return Err(expected("devices", "an array of device names", v));
    };
    let mut set = DeviceSet::NONE;
    for item in items {
        let Value::Str(s) = item else {
            return Err(expected("devices", "an array of device names", v));
        };
        let device = DeviceSet::named(s).ok_or_else(|| {
            let known: Vec<&str> = DeviceSet::ALL.names().collect();
            refuse(
                "devices",
                format!("unknown device {} (known: {})", found(s), known.join(", ")),
            )
        })?;
        if set.contains(device) {
            return Err(refuse("devices", format!("\"{s}\" listed twice")));
        }
        set = set.with(device);
    }
    Ok(set)
}

fn disk(v: &Value<'_>) -> Result<Disk, Refusal> {
    match v {
        Value::Str(s) if s.is_empty() => Err(refuse("disk", "empty file name")),
        Value::Str(s) => Ok(Disk {
            file: Some(s.clone()),
            readonly: false,
            offset: 0,
            size: None,
        }),
        Value::Table(entries) => {
            let mut file = None;
            let mut readonly = false;
            let mut offset = 0;
            let mut length = None;
            for (k, value) in entries {
                match (*k, value) {
                    ("file", Value::Str(s)) if s.is_empty() => {
                        return Err(refuse("disk.file", "empty file name"))
                    }
                    ("file", Value::Str(s)) => file = Some(s.clone()),
                    ("file", v) => return Err(expected("disk.file", "a string", v)),
                    ("readonly", Value::Bool(b)) => readonly = *b,
                    ("readonly", v) => return Err(expected("disk.readonly", "a boolean", v)),
                    ("offset", v) => offset = sectors("disk.offset", v)?,
                    ("size", v) => {
                        let n = sectors("disk.size", v)?;
                        if n == 0 {
                            return Err(refuse("disk.size", "must not be zero"));
                        }
                        length = Some(n);
                    }
                    (k, _) => {
                        return Err(refuse(
                            &format!("disk.{k}"),
                            "unknown key (known: file, readonly, offset, size)",
                        ))
                    }
                }
            }
            if let Some(n) = length {
                if offset.checked_add(n).is_none() {
                    return Err(refuse(
                        "disk",
                        format!("offset {offset:#x} + size {n:#x} is past the end of any disk"),
                    ));
                }
            }
            Ok(Disk {
                file,
                readonly,
                offset,
                size: length,
            })
        }
        v => Err(expected(
            "disk",
            "a file name or { file = .., offset = .., size = .., readonly = .. }",
            v,
        )),
    }
}

fn vars(v: &Value<'_>) -> Result<Vars, Refusal> {
    let Value::Table(entries) = v else {
        return Err(expected("vars", "{ offset = .., size = .. }", v));
    };
    let mut offset = None;
    let mut size = MAX_VARS;
    for (k, value) in entries {
        match *k {
            "offset" => offset = Some(sectors("vars.offset", value)?),
            "size" => {
                size = sectors("vars.size", value)?;
                if size == 0 || size > MAX_VARS {
                    return Err(refuse(
                        "vars.size",
                        format!(
                            "{} is not 512 bytes to {} (a flash bank)",
                            human_size(size),
                            human_size(MAX_VARS)
                        ),
                    ));
                }
            }
            k => {
                return Err(refuse(
                    &format!("vars.{k}"),
                    "unknown key (known: offset, size)",
                ))
            }
        }
    }
    let offset = offset.ok_or_else(|| refuse("vars.offset", "missing: where the store lies"))?;
    if offset.checked_add(size).is_none() {
        return Err(refuse(
            "vars",
            format!("offset {offset:#x} + size {size:#x} is past the end of any disk"),
        ));
    }
    Ok(Vars { offset, size })
}

/// A size of the machine's disk in bytes: whole sectors.
fn sectors(field: &str, v: &Value<'_>) -> Result<u64, Refusal> {
    let bytes = size(field, v)?;
    if !bytes.is_multiple_of(SECTOR_BYTES) {
        return Err(refuse(
            field,
            format!(
                "{} is not a multiple of {}",
                human_size(bytes),
                human_size(SECTOR_BYTES)
            ),
        ));
    }
    Ok(bytes)
}

fn mac(v: &Value<'_>) -> Result<Mac, Refusal> {
    let Value::Str(s) = v else {
        return Err(expected("mac", "a string", v));
    };
    let bad = || {
        refuse(
            "mac",
            format!(
                "expected six hex octets like \"52:54:00:12:34:56\", found {}",
                found(s)
            ),
        )
    };
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for octet in mac.iter_mut() {
        let part = parts.next().ok_or_else(bad)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    if parts.next().is_some() {
        return Err(bad());
    }
    let Some(mac) = Mac::unicast(mac) else {
        return Err(if mac == [0; 6] {
            refuse("mac", "the all-zero address")
        } else {
            refuse(
                "mac",
                format!("{} is a multicast address (first octet odd)", found(s)),
            )
        });
    };
    if mac.is_rhyve_default() {
        let [p0, p1, p2] = Mac::DEFAULT_PREFIX;
        return Err(refuse(
            "mac",
            format!(
                "{} is reserved for rhyve's default addresses ({p0:02x}:{p1:02x}:{p2:02x}:xx:xx:xx)",
                found(s)
            ),
        ));
    }
    Ok(mac)
}
