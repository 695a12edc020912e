//! VM descriptions: the TOML file that says which VMs the machine runs.
//!
//! The hypervisor reads this file at boot from the boot bundle, so the parser is `no_std` and
//! must take any text without panicking. A bad VM description is refused with the line, the
//! field and the reason, and never hides the VMs around it. `cargo xtask run --config` reads
//! the same file on the host with the same code.
//!
//! # The format: a strict subset of TOML
//!
//! ```toml
//! # two guests
//! [[vm]]
//! name = "alpha"
//! vcpus = 2
//! cpus = [0, 1]
//! memory = "256M"
//! kernel = "build/guest/Image"
//! initrd = "build/guest/initramfs.cpio"
//! cmdline = "console=ttyAMA0"
//!
//! [[vm]]
//! name = "beta"
//! memory = 0x1000_0000
//! kernel = { addr = 0x4800_0000, size = 0x100_0000 }
//! devices = ["pl011", "virtio-blk"]
//! disk = { file = "beta.img", offset = "64M", size = "128M", readonly = true }
//! ```
//!
//! - One item per line: a blank line, a `# comment`, a `[[vm]]` header, or `key = value`,
//!   each optionally followed by a comment. Lines end with LF or CRLF. Spaces and tabs are
//!   whitespace.
//! - Keys are bare: `A-Z a-z 0-9 _ -`. No dotted or quoted keys.
//! - Values:
//!   - basic strings `"..."`, with the escapes `\"`, `\\`, `\n` and `\t`; no other control
//!     character;
//!   - non-negative integers, decimal (no leading zero) or `0x` hex, with `_` between digits;
//!   - `true` and `false`;
//!   - arrays of integers or of strings, on one line, a trailing comma allowed;
//!   - inline tables `{ key = value, ... }` of strings, integers and booleans, on one line.
//! - `[[vm]]` starts a VM table; every `key = value` up to the next header belongs to it. Any
//!   other header (`[vm]`, `[[disk]]`, ...) is refused, with everything under it; so is any
//!   `key = value` before the first `[[vm]]`.
//!
//! # The keys of a `[[vm]]` table
//!
//! | key | value | default |
//! |---|---|---|
//! | `name` | `[a-z0-9_-]{1,16}`, unique in the file | required |
//! | `vcpus` | 1..=[`MAX_VCPUS`] | 1 |
//! | `cpus` | physical CPUs that may run it, `[0, 1]`: each 0..=63, none twice, not empty | any |
//! | `memory` | `"256M"`, `"1G"`, `"65536K"` or bytes; a multiple of 2 MiB, 16 MiB..=[`MAX_MEM`] | required |
//! | `kernel` | a file of the boot bundle `"path"`, or host RAM `{ addr = A, size = S }` (S > 0) | required, unless `firmware` |
//! | `firmware` | as `kernel`: a firmware image (U-Boot's `u-boot.bin`, EDK2's `QEMU_EFI.fd`), at most 64 MiB, run from flash at address 0; the VM gets QEMU virt's two flash banks, the second for the firmware's variables; not with `kernel`, `initrd` or a `cmdline` | none |
//! | `initrd` | as `kernel` | none |
//! | `cmdline` | string | `""` |
//! | `devices` | any of `"pl011"`, `"pl031"`, `"virtio-console"`, `"virtio-blk"`, `"virtio-net"`, `"virtio-rng"` (the names of [`DeviceSet::EACH`]), none twice | `["pl011", "pl031"]` |
//! | `disk` | `{ file = "path", offset = "64M", size = "128M", readonly = true }`, every key optional, or `"path"` for `{ file = "path" }`: the slice of the machine's disk, `offset` and `size` as `memory` (multiples of 512; `size` > 0); `file` names the image the host tool attaches as the machine's disk (see below); needs `"virtio-blk"` | the whole disk, writable, when the VM has `"virtio-blk"`; `offset` 0, `size` to the end, `readonly` false, no `file` |
//! | `vars` | `{ offset = "1G", size = "64M" }`: where on the machine's disk the VMM keeps the firmware's variable flash (bank 1's first `size` bytes, at most [`MAX_VARS`]; `size` defaults to it), read at each start of the VM and written through at each program and erase, so the variables survive restarts of rhyve; multiples of 512; overlapping no writable disk of any VM nor another store; needs `firmware` | none: the variables live as long as rhyve runs |
//! | `mac` | `"52:54:00:12:34:56"`, unicast, not zero, not in rhyve's default range `02:72:68:xx:xx:xx`, not an earlier VM's; needs `"virtio-net"` | none: `02:72:68:00:<vm id>:00` |
//! | `autostart` | boolean | `true` |
//!
//! File names are kept as written (non-empty); what they name is the host's business.
//! The machine has one disk, and every VM's disk is a slice of it, so the hypervisor ignores
//! `disk.file`: it is for the tool that starts the machine (`cargo xtask run --config`
//! attaches the file the VMs name as the machine's disk, and refuses VMs naming different
//! ones).
//! A VM whose writable disk ([`VmDesc::writable_disk`]) overlaps that of a VM accepted before
//! it is refused, both named: two VMs writing the same sectors would destroy each other's
//! filesystems.
//! A VM whose `mac` is that of a VM accepted before it is refused, naming that VM: two cards
//! with one address on rhyve's switch would each get half of the other's frames. Addresses in
//! rhyve's default range ([`Mac::DEFAULT_PREFIX`]) are refused, so a configured address
//! never collides with a VM's default one.
//! Unknown keys, a key given twice, a wrong type or an out-of-range value refuse the VM. At
//! most [`MAX_VMS`] `[[vm]]` tables: the ones after are refused.

mod fields;
mod syntax;
mod write;

use abi::vmm::{DeviceSet, DiskSlice, Mac};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use fields::{name, Fields};
use syntax::{read_line, Header, Item, LineError};

/// Most VMs one file may describe: one VMM serves at most this many.
pub const MAX_VMS: usize = abi::vmm::MAX_VMS;
/// Most vCPUs of one VM: as many as the guest's redistributor region holds.
pub const MAX_VCPUS: u32 = abi::layout::MAX_VCPUS as u32;
/// Highest physical CPU number a `cpus` list may name (the mask is a `u64`).
pub const MAX_CPU: u64 = u64::BITS as u64 - 1;
/// Guest RAM is mapped in blocks of this size.
pub const MEM_ALIGN: u64 = 2 << 20;
/// Least guest RAM: room for a kernel, its initrd and a device tree.
pub const MIN_MEM: u64 = 16 << 20;
/// Most guest RAM: the VM's window in the VMM's view.
pub const MAX_MEM: u64 = abi::vmm::GUEST_WINDOW_SIZE;
/// Longest VM name.
pub const MAX_NAME: usize = 16;
/// The unit of a disk's `offset` and `size`: a sector of the machine's disk.
pub const SECTOR_BYTES: u64 = 512;

/// What a VM gets when its table has no `devices` key: the console and the real-time clock.
pub const DEFAULT_DEVICES: DeviceSet = DeviceSet::PL011.with(DeviceSet::PL031);

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// One VM as the file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmDesc {
    /// Its name: `[a-z0-9_-]{1,16}`, unique in the file.
    pub name: String,
    /// vCPU count, 1..=[`MAX_VCPUS`].
    pub vcpus: u32,
    /// The physical CPUs that may run it, as a bit mask (bit n = CPU n); `None`: any.
    pub cpus: Option<u64>,
    /// Guest RAM in bytes: a multiple of [`MEM_ALIGN`], [`MIN_MEM`]..=[`MAX_MEM`].
    pub mem_size: u64,
    /// The kernel, booted directly (QEMU's `-kernel`); `None` when the VM boots `firmware`.
    pub kernel: Option<Source>,
    /// Firmware run from the VM's flash at address 0 (QEMU's `-bios`), which boots the OS from
    /// the VM's disk; `None` when the VM boots `kernel`.
    pub firmware: Option<Source>,
    /// The initrd, if any.
    pub initrd: Option<Source>,
    /// The kernel command line.
    pub cmdline: String,
    /// The devices the VMM partition models for it; none: a VM it does not serve at all.
    pub devices: DeviceSet,
    /// The virtio-blk disk.
    pub disk: Option<Disk>,
    /// Where the firmware's variable flash is kept on the machine's disk, if anywhere.
    pub vars: Option<Vars>,
    /// The virtio-net MAC address.
    pub mac: Option<Mac>,
    /// Started at boot; otherwise only defined, to be started later.
    pub autostart: bool,
}

/// Where a kernel or initrd comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file packed in the boot bundle under this name (`kernel = "build/guest/Image"`).
    Bundle(String),
    /// Bytes already in host RAM, placed by the firmware or QEMU's generic loader
    /// (`kernel = { addr = 0x48000000, size = 0x1000000 }`).
    Memory {
        /// Host physical address.
        addr: u64,
        /// Length in bytes, not zero.
        size: u64,
    },
}

/// The part of the machine's disk that keeps a firmware VM's variable flash (its second bank)
/// across restarts of rhyve: the bank's first `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vars {
    /// Where it starts on the machine's disk, in bytes: a multiple of [`SECTOR_BYTES`].
    pub offset: u64,
    /// Its length in bytes: a non-zero multiple of [`SECTOR_BYTES`], at most [`MAX_VARS`].
    pub size: u64,
}

impl Vars {
    /// As the slice of the machine's disk the VMM writes.
    pub fn slice(&self) -> DiskSlice {
        DiskSlice {
            start: self.offset / SECTOR_BYTES,
            sectors: self.size / SECTOR_BYTES,
            read_only: false,
        }
    }
}

/// Most bytes of the variable flash kept on disk: the whole bank.
pub const MAX_VARS: u64 = abi::layout::FLASH_BANK_SIZE;

/// A VM's disk: a slice of the machine's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    /// The image the host attaches as the machine's disk, as the file names it; the
    /// hypervisor ignores it (the machine has one disk, whatever backs it).
    pub file: Option<String>,
    /// The guest may not write it.
    pub readonly: bool,
    /// Where it starts on the machine's disk, in bytes: a multiple of [`SECTOR_BYTES`].
    pub offset: u64,
    /// Its length in bytes, a non-zero multiple of [`SECTOR_BYTES`]; `None`: to the end of the
    /// machine's disk.
    pub size: Option<u64>,
}

impl VmDesc {
    /// The part of the machine's disk this VM's virtio-blk is: its `disk` slice, or the whole
    /// disk when it names none.
    pub fn disk_slice(&self) -> DiskSlice {
        match &self.disk {
            None => DiskSlice::WHOLE,
            Some(d) => DiskSlice {
                start: d.offset / SECTOR_BYTES,
                sectors: d.size.map_or(0, |n| n / SECTOR_BYTES),
                read_only: d.readonly,
            },
        }
    }

    /// The bytes of the machine's disk this VM may write, `[start, end)` (`end` `None`: to the
    /// end of the disk); `None` if it has no virtio-blk or a read-only disk.
    pub fn writable_disk(&self) -> Option<(u64, Option<u64>)> {
        if !self.devices.contains(DeviceSet::VIRTIO_BLK)
            || self.disk.as_ref().is_some_and(|d| d.readonly)
        {
            return None;
        }
        Some(match &self.disk {
            None => (0, None),
            Some(d) => (d.offset, d.size.map(|n| d.offset + n)),
        })
    }
}

/// Whether two writable extents of [`VmDesc::writable_disk`] share a byte.
fn extents_overlap(a: (u64, Option<u64>), b: (u64, Option<u64>)) -> bool {
    let before = |x: (u64, Option<u64>), y: (u64, Option<u64>)| x.1.is_some_and(|end| end <= y.0);
    !before(a, b) && !before(b, a)
}

/// An extent for a message: "64 MiB..192 MiB", "64 MiB..the end", "the whole disk".
fn extent_text(e: (u64, Option<u64>)) -> String {
    match e {
        (0, None) => "the whole disk".into(),
        (start, None) => format!("{}..the end", human_size(start)),
        (start, Some(end)) => format!("{}..{}", human_size(start), human_size(end)),
    }
}

/// A writable part of the machine's disk an accepted VM has: its name, the line that gives
/// it (`disk`, or `devices` for the whole disk), the extent.
struct DiskClaim {
    vm: String,
    line: usize,
    extent: (u64, Option<u64>),
}

/// A MAC address an accepted VM's card has: its name, the line of its `mac`.
struct MacClaim {
    vm: String,
    line: usize,
    mac: Mac,
}

/// What the VMs accepted so far hold, that a later VM may not take too.
#[derive(Default)]
struct Claims {
    /// Writable parts of the machine's disk.
    disks: Vec<DiskClaim>,
    /// Configured MAC addresses.
    macs: Vec<MacClaim>,
}

/// Why a VM (or a part of the file outside any VM) was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The VM's name, when its table gives a valid one.
    pub vm: Option<String>,
    /// The line (from 1) of the fault, or of the VM's `[[vm]]` header for a missing key.
    pub line: usize,
    /// The field at fault (`kernel.size` for a key of an inline table), if one is.
    pub field: Option<String>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.vm {
            Some(vm) => write!(f, "vm \"{vm}\" (line {}): ", self.line)?,
            None => write!(f, "line {}: ", self.line)?,
        }
        if let Some(field) = &self.field {
            write!(f, "field \"{field}\": ")?;
        }
        f.write_str(&self.reason)
    }
}

/// Every `[[vm]]` table, in file order: each either described or refused with its reason.
/// Errors outside any `[[vm]]` table (text before the first one, unknown table headers) are
/// reported as an entry of their own; a bad VM never hides the good ones.
pub fn parse(text: &str) -> Vec<Result<VmDesc, ConfigError>> {
    let mut out = Vec::new();
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut claims = Claims::default();
    let mut tables = 0;
    let mut section = Section::Preamble;
    for (i, raw) in text.split('\n').enumerate() {
        let line = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match read_line(raw) {
            Ok(Item::Blank) => {}
            Ok(Item::Header(header)) => {
                if let Section::Vm(t) = core::mem::replace(&mut section, Section::Skipped) {
                    tables += 1;
                    out.push(t.describe(tables, &mut names, &mut claims));
                }
                match header {
                    Header::Vm(error) => {
                        section = Section::Vm(Table {
                            line,
                            error,
                            entries: Vec::new(),
                        })
                    }
                    Header::Other(reason) => out.push(Err(ConfigError {
                        vm: None,
                        line,
                        field: None,
                        reason,
                    })),
                }
            }
            item => match &mut section {
                Section::Vm(t) => t.entries.push((line, item)),
                Section::Skipped => {}
                Section::Preamble => {
                    let (field, reason) = match item {
                        Ok(Item::Entry(key, _)) => (
                            Some(key.to_string()),
                            "outside any [[vm]] table".to_string(),
                        ),
                        Err(e) => (e.field, e.reason),
                        Ok(_) => continue,
                    };
                    out.push(Err(ConfigError {
                        vm: None,
                        line,
                        field,
                        reason,
                    }));
                }
            },
        }
    }
    if let Section::Vm(t) = section {
        tables += 1;
        out.push(t.describe(tables, &mut names, &mut claims));
    }
    out
}

/// Where the lines being read belong.
enum Section<'a> {
    /// Before the first header.
    Preamble,
    /// Under a refused header.
    Skipped,
    /// In a `[[vm]]` table.
    Vm(Table<'a>),
}

/// The lines of one `[[vm]]` table, before they are checked.
struct Table<'a> {
    /// Its header's line.
    line: usize,
    /// What is wrong on its header line.
    error: Option<String>,
    /// Its `key = value` lines (or why they do not read), with their line numbers.
    entries: Vec<(usize, Result<Item<'a>, LineError>)>,
}

impl Table<'_> {
    /// Checks this table, the `number`th `[[vm]]` of the file; `names` holds the names (and
    /// lines) of the tables before it and gets this one's; `claims` holds what the VMs
    /// accepted before it hold (writable disk extents, MACs) and gets this one's if it is
    /// accepted.
    fn describe(
        self,
        number: usize,
        names: &mut Vec<(String, usize)>,
        claims: &mut Claims,
    ) -> Result<VmDesc, ConfigError> {
        // The name, if one is valid, labels every error of the table.
        let named = self.entries.iter().find_map(|(line, e)| match e {
            Ok(Item::Entry("name", v)) => name(v).ok().map(|n| (n, *line)),
            _ => None,
        });
        let vm = named.as_ref().map(|(n, _)| n.clone());
        let err = |line: usize, field: Option<String>, reason: String| ConfigError {
            vm: vm.clone(),
            line,
            field,
            reason,
        };
        let duplicate = named.as_ref().and_then(|(n, line)| {
            let first = names.iter().find(|(m, _)| m == n).map(|(_, l)| *l);
            if first.is_none() {
                names.push((n.clone(), *line));
            }
            first.map(|f| (*line, f))
        });

        if number > MAX_VMS {
            return Err(err(
                self.line,
                None,
                format!("more than {MAX_VMS} VMs: at most {MAX_VMS} [[vm]] tables"),
            ));
        }
        if let Some(reason) = self.error {
            return Err(err(self.line, None, reason));
        }
        let mut f = Fields::default();
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for (line, entry) in &self.entries {
            let (key, value) = match entry {
                Ok(Item::Entry(k, v)) => (*k, v),
                Ok(_) => continue,
                Err(e) => return Err(err(*line, e.field.clone(), e.reason.clone())),
            };
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                return Err(err(
                    *line,
                    Some(key.into()),
                    format!("given twice (first at line {first})"),
                ));
            }
            seen.push((key, *line));
            f.set(key, value)
                .map_err(|r| err(*line, Some(r.field), r.reason))?;
        }
        let line_of = |key: &str| {
            seen.iter()
                .find(|(k, _)| *k == key)
                .map_or(self.line, |(_, l)| *l)
        };
        let missing = |key: &str| {
            err(
                self.line,
                Some(key.into()),
                "missing: every [[vm]] needs one".into(),
            )
        };
        let name = f.name.ok_or_else(|| missing("name"))?;
        let mem_size = f.mem_size.ok_or_else(|| missing("memory"))?;
        match (&f.kernel, &f.firmware) {
            (None, None) => {
                return Err(err(
                    self.line,
                    Some("kernel".into()),
                    "missing: every [[vm]] needs a kernel or a firmware".into(),
                ))
            }
            (Some(_), Some(_)) => {
                return Err(err(
                    line_of("firmware"),
                    Some("firmware".into()),
                    "a VM boots a kernel or a firmware, not both (the firmware loads the OS from the VM's disk)".into(),
                ))
            }
            _ => {}
        }
        if f.firmware.is_some() {
            if f.initrd.is_some() {
                return Err(err(
                    line_of("initrd"),
                    Some("initrd".into()),
                    "a VM that boots a firmware has no initrd: the firmware loads it from the VM's disk".into(),
                ));
            }
            if f.cmdline.as_deref().is_some_and(|c| !c.is_empty()) {
                return Err(err(
                    line_of("cmdline"),
                    Some("cmdline".into()),
                    "a VM that boots a firmware has no command line: its boot loader gives the kernel one".into(),
                ));
            }
        }
        let devices = f.devices.unwrap_or(DEFAULT_DEVICES);
        if f.disk.is_some() && !devices.contains(DeviceSet::VIRTIO_BLK) {
            return Err(err(
                line_of("disk"),
                Some("disk".into()),
                "a disk needs \"virtio-blk\" in devices".into(),
            ));
        }
        if f.vars.is_some() && f.firmware.is_none() {
            return Err(err(
                line_of("vars"),
                Some("vars".into()),
                "only a VM that boots a firmware has a variable flash to keep".into(),
            ));
        }
        if f.mac.is_some() && !devices.contains(DeviceSet::VIRTIO_NET) {
            return Err(err(
                line_of("mac"),
                Some("mac".into()),
                "a MAC address needs \"virtio-net\" in devices".into(),
            ));
        }
        if let Some((line, first)) = duplicate {
            return Err(err(
                line,
                Some("name".into()),
                format!("\"{name}\" is already the name of the VM at line {first}"),
            ));
        }
        let vm = VmDesc {
            name,
            vcpus: f.vcpus.unwrap_or(1),
            cpus: f.cpus,
            mem_size,
            kernel: f.kernel,
            firmware: f.firmware,
            initrd: f.initrd,
            cmdline: f.cmdline.unwrap_or_default(),
            devices,
            disk: f.disk,
            vars: f.vars,
            mac: f.mac,
            autostart: f.autostart.unwrap_or(true),
        };
        // The variable store is written by the VMM: no disk may write it, its own included.
        let vars = vm.vars.map(|v| DiskClaim {
            vm: vm.name.clone(),
            line: line_of("vars"),
            extent: (v.offset, Some(v.offset + v.size)),
        });
        if let (Some(v), Some(own)) = (&vars, vm.writable_disk()) {
            if extents_overlap(v.extent, own) {
                return Err(err(
                    v.line,
                    Some("vars".into()),
                    format!(
                        "the variable store ({}) overlaps the VM's own writable disk ({})",
                        extent_text(v.extent),
                        extent_text(own)
                    ),
                ));
            }
        }
        if let Some(mine) = &vars {
            if let Some(other) = claims
                .disks
                .iter()
                .find(|c| extents_overlap(c.extent, mine.extent))
            {
                return Err(err(
                    mine.line,
                    Some("vars".into()),
                    format!(
                        "the variable store ({}) overlaps the writable part of the machine's disk of vm \"{}\" (line {}, {})",
                        extent_text(mine.extent),
                        other.vm,
                        other.line,
                        extent_text(other.extent)
                    ),
                ));
            }
        }
        // Two VMs writing the same sectors would destroy each other's filesystems.
        let disk = vm.writable_disk().map(|extent| DiskClaim {
            vm: vm.name.clone(),
            line: if vm.disk.is_some() {
                line_of("disk")
            } else {
                line_of("devices")
            },
            extent,
        });
        if let Some(mine) = &disk {
            let overlapped = claims
                .disks
                .iter()
                .find(|c| extents_overlap(c.extent, mine.extent));
            if let Some(other) = overlapped {
                return Err(err(
                    mine.line,
                    Some("disk".into()),
                    format!(
                        "its writable part of the machine's disk ({}) overlaps that of vm \"{}\" (line {}, {}): give the two disjoint slices (offset, size) or make one readonly",
                        extent_text(mine.extent),
                        other.vm,
                        other.line,
                        extent_text(other.extent)
                    ),
                ));
            }
        }
        // Two cards with one address on the switch would each get the other's frames.
        let mac = vm.mac.map(|mac| MacClaim {
            vm: vm.name.clone(),
            line: line_of("mac"),
            mac,
        });
        if let Some(mine) = &mac {
            if let Some(other) = claims.macs.iter().find(|c| c.mac == mine.mac) {
                return Err(err(
                    mine.line,
                    Some("mac".into()),
                    format!(
                        "{} is already the address of vm \"{}\" (line {}): give each VM its own, or none for rhyve's default",
                        mine.mac,
                        other.vm,
                        other.line
                    ),
                ));
            }
        }
        // Accepted: only now does it hold anything, so a refused VM blocks no later one.
        claims.disks.extend(disk);
        claims.disks.extend(vars);
        claims.macs.extend(mac);
        Ok(vm)
    }
}

/// `bytes` as a whole number of the largest unit that divides it: (count, "G" | "M" | "K").
fn size_unit(bytes: u64) -> Option<(u64, &'static str)> {
    [(GIB, "G"), (MIB, "M"), (KIB, "K")]
        .into_iter()
        .find(|(unit, _)| bytes != 0 && bytes.is_multiple_of(*unit))
        .map(|(unit, name)| (bytes / unit, name))
}

/// `bytes` for a message: "3 MiB", "1 GiB", "4097 bytes".
fn human_size(bytes: u64) -> String {
    match size_unit(bytes) {
        Some((n, unit)) => format!("{n} {unit}iB"),
        None => format!("{bytes} bytes"),
    }
}

#[cfg(test)]
mod tests;
