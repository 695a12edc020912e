//! `config`: `vmboot::config::parse` of arbitrary text, of generated descriptions, and of
//! `VmDesc::to_toml` of arbitrary VMs.
//!
//! Invariants: no panic; every accepted VM satisfies every documented rule (name charset and
//! length, unique among the accepted; vCPUs in range; a non-empty CPU mask; memory a multiple
//! of 2 MiB in range; non-empty file names, non-empty memory ranges that do not wrap; strings
//! without control characters other than newline and tab; a disk only with virtio-blk, its
//! offset and size whole sectors, the size not zero and the end not past 2^64, its file, if
//! named, not empty; a unicast non-zero MAC outside rhyve's default range only with
//! virtio-net); no two accepted VMs' writable disks overlapping, nor their MACs equal; at
//! most `MAX_VMS` accepted; each `[[vm]]` line
//! gives an entry; every error names a line of the text and gives a reason; re-serialising an
//! accepted VM and parsing it gives the same VM; a good VM appended to any text that gives
//! fewer than `MAX_VMS` entries is accepted and changes none of them; and a VM written by
//! `to_toml` is accepted exactly when it obeys the rules (a reference check here), as itself.

use abi::vmm::{DeviceSet, Mac};
use arbitrary::{Result, Unstructured};
use vmboot::config::{
    parse, ConfigError, Disk, Source, Vars, VmDesc, DEFAULT_DEVICES, MAX_CPU, MAX_MEM, MAX_NAME,
    MAX_VARS, MAX_VCPUS, MAX_VMS, MEM_ALIGN, MIN_MEM, SECTOR_BYTES,
};

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => check_text(&String::from_utf8_lossy(rest)),
        1 => {
            if let Ok(text) = generate(&mut Unstructured::new(rest)) {
                check_text(&text);
            }
        }
        _ => {
            let _ = check_written(&mut Unstructured::new(rest));
        }
    }
}

/// Whether `s` has only characters a basic string can hold (escaped or not).
fn representable(s: &str) -> bool {
    s.chars().all(|c| !c.is_control() || c == '\n' || c == '\t')
}

fn valid_name(s: &str) -> bool {
    (1..=MAX_NAME).contains(&s.len())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

fn valid_source(s: &Source) -> bool {
    match s {
        Source::Bundle(name) => !name.is_empty() && representable(name),
        Source::Memory { addr, size } => *size != 0 && addr.checked_add(*size).is_some(),
    }
}

/// The documented rules, read from the module documentation's table.
fn obeys_rules(vm: &VmDesc) -> bool {
    valid_name(&vm.name)
        && (1..=MAX_VCPUS).contains(&vm.vcpus)
        && vm.cpus != Some(0)
        && vm.mem_size.is_multiple_of(MEM_ALIGN)
        && (MIN_MEM..=MAX_MEM).contains(&vm.mem_size)
        && match (&vm.kernel, &vm.firmware) {
            (Some(k), None) => valid_source(k),
            (None, Some(f)) => valid_source(f) && vm.initrd.is_none() && vm.cmdline.is_empty(),
            _ => false,
        }
        && vm.initrd.as_ref().is_none_or(valid_source)
        && representable(&vm.cmdline)
        && vm.disk.as_ref().is_none_or(|d| {
            d.file
                .as_ref()
                .is_none_or(|f| !f.is_empty() && representable(f))
                && vm.devices.contains(DeviceSet::VIRTIO_BLK)
                && d.offset.is_multiple_of(SECTOR_BYTES)
                && d.size.is_none_or(|n| {
                    n != 0 && n.is_multiple_of(SECTOR_BYTES) && d.offset.checked_add(n).is_some()
                })
        })
        && vm.vars.is_none_or(|v| {
            let end = v.offset.checked_add(v.size);
            vm.firmware.is_some()
                && v.offset.is_multiple_of(SECTOR_BYTES)
                && v.size.is_multiple_of(SECTOR_BYTES)
                && (1..=MAX_VARS).contains(&v.size)
                && end.is_some()
                && vm.writable_disk().is_none_or(|(start, disk_end)| {
                    // The store may not overlap the VM's own writable disk.
                    end.is_some_and(|e| e <= start) || disk_end.is_some_and(|d| d <= v.offset)
                })
        })
        && vm.mac.map(Mac::octets).is_none_or(|m| {
            m[0] & 1 == 0
                && m != [0; 6]
                && m[..3] != Mac::DEFAULT_PREFIX
                && vm.devices.contains(DeviceSet::VIRTIO_NET)
        })
}

fn check_text(text: &str) {
    let all = parse(text);
    let lines = text.split('\n').count();
    let headers = text
        .split('\n')
        .filter(|l| l.trim_end_matches('\r') == "[[vm]]")
        .count();
    assert!(
        all.len() >= headers,
        "{headers} [[vm]] lines, {} entries",
        all.len()
    );
    let mut names: Vec<&str> = Vec::new();
    // The writable byte ranges of the machine's disk accepted so far (end: u64::MAX for "to
    // the end"), computed here from the fields, not with the parser's helpers.
    let mut writable: Vec<(u64, u64)> = Vec::new();
    let mut macs: Vec<Mac> = Vec::new();
    for r in &all {
        match r {
            Ok(vm) => {
                assert!(obeys_rules(vm), "accepted against the rules: {vm:?}");
                assert!(!names.contains(&vm.name.as_str()), "{} twice", vm.name);
                names.push(&vm.name);
                let range = match &vm.disk {
                    _ if !vm.devices.contains(DeviceSet::VIRTIO_BLK) => None,
                    None => Some((0, u64::MAX)),
                    Some(d) if d.readonly => None,
                    Some(d) => Some((d.offset, d.size.map_or(u64::MAX, |n| d.offset + n))),
                };
                if let Some((start, end)) = range {
                    assert!(
                        writable.iter().all(|&(s, e)| end <= s || e <= start),
                        "{} writes {start:#x}..{end:#x} over another VM's {writable:x?}",
                        vm.name
                    );
                    writable.push((start, end));
                }
                if let Some(m) = vm.mac {
                    assert!(!macs.contains(&m), "{}: MAC {m} twice", vm.name);
                    macs.push(m);
                }
                let again = parse(&vm.to_toml());
                assert_eq!(again, [Ok(vm.clone())], "to_toml:\n{}", vm.to_toml());
            }
            Err(e) => check_error(e, lines),
        }
    }
    assert!(names.len() <= MAX_VMS);

    // A good VM after any text that leaves room for it.
    const NAME: &str = "zq-appended";
    if all.len() < MAX_VMS && !text.contains(NAME) {
        let good = VmDesc {
            name: NAME.into(),
            vcpus: 1,
            cpus: None,
            mem_size: MIN_MEM,
            kernel: Some(Source::Bundle("k".into())),
            firmware: None,
            initrd: None,
            cmdline: String::new(),
            devices: DEFAULT_DEVICES,
            disk: None,
            vars: None,
            mac: None,
            autostart: true,
        };
        let mut after = parse(&format!("{text}\n{}", good.to_toml()));
        assert_eq!(after.pop(), Some(Ok(good)), "appended VM");
        assert_eq!(after, all, "appending a VM changed the ones before");
    }
}

fn check_error(e: &ConfigError, lines: usize) {
    assert!((1..=lines).contains(&e.line), "line {} of {lines}", e.line);
    assert!(!e.reason.is_empty());
    if let Some(vm) = &e.vm {
        assert!(valid_name(vm), "error names VM {vm:?}");
    }
    let shown = e.to_string();
    assert!(shown.contains(&format!("line {}", e.line)), "{shown}");
}

/// Text of `[[vm]]` tables made of likely keys and values, to reach the field checks.
fn generate(u: &mut Unstructured) -> Result<String> {
    const KEYS: [&str; 16] = [
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
        "name",
        "memory",
        "bogus",
    ];
    let mut text = String::new();
    for _ in 0..u.int_in_range(0..=40)? {
        let line = match u.int_in_range(0..=9)? {
            0 => "[[vm]]".to_string(),
            1 => (*u.choose(&["[vm]", "[[disk]]", "# c", "", "[[ vm ]] # x", "x"])?).to_string(),
            _ => format!("{} = {}", u.choose(&KEYS)?, value(u, true)?),
        };
        text.push_str(&line);
        text.push_str(if u.arbitrary()? { "\n" } else { "\r\n" });
    }
    Ok(text)
}

fn value(u: &mut Unstructured, top: bool) -> Result<String> {
    Ok(match u.int_in_range(0..=if top { 9 } else { 5 })? {
        0 => u.int_in_range(0u64..=130)?.to_string(),
        1 => format!(
            "{:#x}",
            u.arbitrary::<u64>()? & !(MEM_ALIGN - 1) >> u.int_in_range(0..=40)?
        ),
        2 => format!(
            "\"{}\"",
            u.choose(&[
                "256M",
                "1G",
                "3M",
                "16M",
                "14M",
                "65536K",
                "abc",
                "",
                "vm-1",
                "k",
                "52:54:00:12:34:56",
                "52:54:00:12:34:57",
                "02:72:68:00:01:00",
            ])?
        ),
        3 => u.arbitrary::<bool>()?.to_string(),
        4 => format!("\"{}\"", u.choose(&DeviceSet::EACH)?.1),
        5 => {
            let s: String = u.arbitrary()?;
            format!("\"{}\"", s.replace(['"', '\\'], ""))
        }
        6 | 7 => {
            let items: Vec<String> = (0..u.int_in_range(0..=4)?)
                .map(|_| value(u, false))
                .collect::<Result<_>>()?;
            format!("[{}]", items.join(", "))
        }
        8 => format!(
            "{{ addr = {:#x}, size = {:#x} }}",
            u.arbitrary::<u64>()?,
            u.int_in_range(0u64..=0x1000)?
        ),
        _ => {
            let mut items = Vec::new();
            if u.arbitrary()? {
                items.push(format!("file = {}", value(u, false)?));
            }
            for key in ["offset", "size"] {
                if u.arbitrary()? {
                    let v = if u.arbitrary()? {
                        (u.int_in_range(0u64..=8)? * 256).to_string()
                    } else {
                        value(u, false)?
                    };
                    items.push(format!("{key} = {v}"));
                }
            }
            if u.arbitrary()? {
                items.push(format!("readonly = {}", u.arbitrary::<bool>()?));
            }
            format!("{{ {} }}", items.join(", "))
        }
    })
}

/// An arbitrary VM, written with `to_toml` and parsed back.
fn check_written(u: &mut Unstructured) -> Result<()> {
    let string = |u: &mut Unstructured| -> Result<String> {
        Ok(if u.ratio(3, 4)? {
            let len = u.int_in_range(0..=MAX_NAME + 1)?;
            (0..len)
                .map(|_| u.choose(b"abz09_-A .\"\\\n\t#").map(|&b| b as char))
                .collect::<Result<String>>()?
        } else {
            u.arbitrary()?
        })
    };
    let source = |u: &mut Unstructured| -> Result<Source> {
        Ok(if u.arbitrary()? {
            Source::Bundle(string(u)?)
        } else {
            Source::Memory {
                addr: u.arbitrary()?,
                size: u.arbitrary()?,
            }
        })
    };
    let mut devices = DeviceSet::NONE;
    for (device, _) in DeviceSet::EACH {
        if u.arbitrary()? {
            devices = devices.with(device);
        }
    }
    let vm = VmDesc {
        name: string(u)?,
        vcpus: u.int_in_range(0..=MAX_VCPUS + 1)?,
        cpus: if u.arbitrary()? {
            Some(u.arbitrary::<u64>()? >> u.int_in_range(0..=MAX_CPU as u32)?)
        } else {
            None
        },
        mem_size: if u.ratio(3, 4)? {
            u.int_in_range(0..=MAX_MEM / MEM_ALIGN + 1)? * MEM_ALIGN
        } else {
            u.arbitrary()?
        },
        kernel: if u.ratio(7, 8)? {
            Some(source(u)?)
        } else {
            None
        },
        firmware: if u.ratio(1, 4)? {
            Some(source(u)?)
        } else {
            None
        },
        initrd: if u.arbitrary()? {
            Some(source(u)?)
        } else {
            None
        },
        cmdline: string(u)?,
        devices,
        disk: if u.arbitrary()? {
            Some(Disk {
                file: if u.arbitrary()? {
                    Some(string(u)?)
                } else {
                    None
                },
                readonly: u.arbitrary()?,
                offset: if u.arbitrary()? {
                    u.arbitrary::<u64>()? & !(SECTOR_BYTES - 1)
                } else {
                    u.arbitrary()?
                },
                size: if u.arbitrary()? {
                    Some(u.int_in_range(0..=64)? * SECTOR_BYTES)
                } else {
                    u.arbitrary()?
                },
            })
        } else {
            None
        },
        vars: if u.ratio(1, 4)? {
            Some(Vars {
                offset: u.arbitrary::<u64>()? & !(SECTOR_BYTES - 1),
                size: if u.arbitrary()? {
                    u.int_in_range(0..=MAX_VARS / SECTOR_BYTES + 1)? * SECTOR_BYTES
                } else {
                    u.arbitrary()?
                },
            })
        } else {
            None
        },
        mac: if u.arbitrary()? {
            let mut m: [u8; 6] = u.arbitrary()?;
            // Reach rhyve's default range, which random octets would almost never hit.
            if u.arbitrary()? {
                m[..3].copy_from_slice(&Mac::DEFAULT_PREFIX);
            }
            // A group or zero address is no card's: the type refuses it, so the VM has none.
            Mac::unicast(m)
        } else {
            None
        },
        autostart: u.arbitrary()?,
    };
    let text = vm.to_toml();
    let all = parse(&text);
    assert_eq!(all.len(), 1, "{text}");
    match &all[0] {
        Ok(parsed) => {
            assert!(obeys_rules(&vm), "accepted against the rules:\n{text}");
            assert_eq!(parsed, &vm, "round trip of\n{text}");
        }
        Err(e) => {
            assert!(
                !obeys_rules(&vm),
                "refused ({e}) though it obeys the rules:\n{text}"
            );
            check_error(e, text.split('\n').count());
        }
    }
    Ok(())
}
