use super::*;
use alloc::string::ToString;
use std::vec;

/// A minimal valid VM: lines 1-4. A line added with [`with`] is line 5.
const BASE: &str = "[[vm]]\nname = \"web\"\nmemory = \"256M\"\nkernel = \"Image\"\n";

fn with(extra: &str) -> String {
    format!("{BASE}{extra}\n")
}

/// The one entry `text` gives.
fn one(text: &str) -> Result<VmDesc, ConfigError> {
    let mut all = parse(text);
    assert_eq!(all.len(), 1, "{text:?} gave {all:?}");
    all.remove(0)
}

/// The message of the one entry `text` gives, which must be a refusal.
fn refused(text: &str) -> String {
    match one(text) {
        Ok(vm) => panic!("{text:?} accepted as {vm:?}"),
        Err(e) => e.to_string(),
    }
}

fn base_desc() -> VmDesc {
    VmDesc {
        name: "web".into(),
        vcpus: 1,
        cpus: None,
        mem_size: 256 << 20,
        kernel: Some(Source::Bundle("Image".into())),
        firmware: None,
        initrd: None,
        cmdline: String::new(),
        devices: DEFAULT_DEVICES,
        disk: None,
        vars: None,
        mac: None,
        autostart: true,
    }
}

#[test]
fn minimal_vm_takes_the_defaults() {
    assert_eq!(one(BASE), Ok(base_desc()));
}

#[test]
fn full_vm() {
    let text = r#"
# a comment line
[[vm]]   # the first VM
name = "db_1-x"
vcpus = 4
cpus = [0, 3, 63,]
memory = 0x4000_0000
kernel = { addr = 0x4800_0000, size = 0x100_0000 }
initrd = "guest/initramfs.cpio"
cmdline = "console=ttyAMA0 a=\"b\" c\\d\te\n#not a comment"
devices = ["pl011", "pl031", "virtio-console", "virtio-blk", "virtio-net", "virtio-rng"]
disk = { file = "db.img", readonly = true }
mac = "52:54:00:AB:cd:56"
autostart = false
"#;
    assert_eq!(
        one(text),
        Ok(VmDesc {
            name: "db_1-x".into(),
            vcpus: 4,
            cpus: Some(1 | 1 << 3 | 1 << 63),
            mem_size: 1 << 30,
            kernel: Some(Source::Memory {
                addr: 0x4800_0000,
                size: 0x100_0000
            }),
            firmware: None,
            initrd: Some(Source::Bundle("guest/initramfs.cpio".into())),
            cmdline: "console=ttyAMA0 a=\"b\" c\\d\te\n#not a comment".into(),
            devices: DeviceSet::ALL,
            disk: Some(Disk {
                file: Some("db.img".into()),
                readonly: true,
                offset: 0,
                size: None,
            }),
            vars: None,
            mac: Mac::unicast([0x52, 0x54, 0x00, 0xab, 0xcd, 0x56]),
            autostart: false,
        })
    );
}

#[test]
fn crlf_tabs_and_spaced_header() {
    let text = "[[ vm ]]\r\n\tname\t=\t\"a\"\r\nmemory=\"16M\"\r\nkernel=\"k\"\r\n";
    let vm = one(text).unwrap();
    assert_eq!(vm.name, "a");
    assert_eq!(vm.mem_size, 16 << 20);
}

#[test]
fn several_vms_in_file_order_and_a_bad_one_hides_nothing() {
    let text = format!(
        "{BASE}\n[[vm]]\nname = \"bad\"\nmemory = \"3M\"\nkernel = \"k\"\n\n{}",
        BASE.replace("web", "third")
    );
    let all = parse(&text);
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].as_ref().unwrap().name, "web");
    assert_eq!(
        all[1].as_ref().unwrap_err().to_string(),
        "vm \"bad\" (line 8): field \"memory\": 3 MiB is not a multiple of 2 MiB"
    );
    assert_eq!(all[2].as_ref().unwrap().name, "third");
}

#[test]
fn empty_and_comment_only_files_describe_nothing() {
    assert_eq!(parse(""), vec![]);
    assert_eq!(parse("\n  # nothing\n\t\n"), vec![]);
}

// ---- lines outside VMs ----------------------------------------------------------------------

#[test]
fn text_before_the_first_vm_is_its_own_entry() {
    let all = parse(&format!("vcpus = 2\n{BASE}"));
    assert_eq!(all.len(), 2);
    assert_eq!(
        all[0].as_ref().unwrap_err().to_string(),
        "line 1: field \"vcpus\": outside any [[vm]] table"
    );
    assert_eq!(all[1].as_ref().unwrap().name, "web");
}

#[test]
fn garbage_line_says_what_was_expected() {
    let all = parse("hello world\n");
    assert_eq!(
        all[0].as_ref().unwrap_err().to_string(),
        "line 1: expected \"key = value\", found \"hello world\""
    );
    assert_eq!(
        refused(&with("just words")),
        "vm \"web\" (line 5): expected \"key = value\", found \"just words\""
    );
    assert_eq!(
        refused(&with("a.b = 1")),
        "vm \"web\" (line 5): expected \"key = value\", found \"a.b = 1\""
    );
}

#[test]
fn unknown_tables_are_refused_with_their_contents() {
    let text = format!("[vm]\nname = \"x\"\n[[disk]]\nfile = \"d\"\n{BASE}[machine\n");
    let all = parse(&text);
    let msgs: Vec<String> = all
        .iter()
        .map(|r| match r {
            Ok(vm) => vm.name.clone(),
            Err(e) => e.to_string(),
        })
        .collect();
    assert_eq!(
        msgs,
        vec![
            "line 1: unknown table \"[vm]\": a VM is a [[vm]] table".to_string(),
            "line 3: unknown table \"[[disk]]\": a VM is a [[vm]] table".to_string(),
            "web".to_string(),
            "line 9: expected a table header like \"[[vm]]\", found \"[machine\"".to_string(),
        ]
    );
}

#[test]
fn text_after_a_vm_header_refuses_that_vm() {
    assert_eq!(
        refused(&BASE.replace("[[vm]]", "[[vm]] x")),
        "vm \"web\" (line 1): unexpected \"x\" after [[vm]]"
    );
}

#[test]
fn long_or_odd_text_is_escaped_and_cut_in_messages() {
    let long = "x".repeat(40);
    assert_eq!(
        parse(&format!("{long}\n"))[0]
            .as_ref()
            .unwrap_err()
            .to_string(),
        format!(
            "line 1: expected \"key = value\", found \"{}...\"",
            &long[..32]
        )
    );
    assert_eq!(
        parse("\u{1b}[2J\n")[0].as_ref().unwrap_err().to_string(),
        "line 1: expected \"key = value\", found \"\\u{1b}[2J\""
    );
}

// ---- values -----------------------------------------------------------------------------------

#[test]
fn string_escapes_and_errors() {
    assert_eq!(
        refused(&with("cmdline = \"a\\x\"")),
        "vm \"web\" (line 5): field \"cmdline\": unknown escape \"\\x\" (known: \\\" \\\\ \\n \\t)"
    );
    assert_eq!(
        refused(&with("cmdline = \"abc")),
        "vm \"web\" (line 5): field \"cmdline\": unterminated string"
    );
    assert_eq!(
        refused(&with("cmdline = \"abc\\")),
        "vm \"web\" (line 5): field \"cmdline\": unterminated string"
    );
    assert_eq!(
        refused(&with("cmdline = \"a\rb\"")),
        "vm \"web\" (line 5): field \"cmdline\": control character '\\r' in a string (write \\n or \\t)"
    );
    // A raw tab is allowed; `#` inside a string is no comment.
    assert_eq!(
        one(&with("cmdline = \"a\tb # c\" # d")).unwrap().cmdline,
        "a\tb # c"
    );
}

#[test]
fn integer_forms() {
    let vcpus = |v: &str| one(&with(&format!("vcpus = {v}"))).map(|vm| vm.vcpus);
    assert_eq!(vcpus("1_2"), Ok(12));
    assert_eq!(vcpus("0x1_0"), Ok(16));
    assert_eq!(vcpus("0xA"), Ok(10));
    for (v, reason) in [
        (
            "012",
            "\"012\": leading zeros are not allowed (write 0x for hex)",
        ),
        ("1__2", "\"1__2\" is not an integer"),
        ("12_", "\"12_\" is not an integer"),
        ("0x_1", "\"0x_1\" is not an integer"),
        ("0x", "\"0x\" is not an integer"),
        ("0xg", "\"0xg\" is not an integer"),
        ("1.5", "\"1.5\" is not an integer"),
        ("-1", "\"-1\": signed integers are not accepted"),
        ("+1", "\"+1\": signed integers are not accepted"),
        (
            "18446744073709551616",
            "\"18446744073709551616\" is out of range (more than 64 bits)",
        ),
        (
            "0x1_0000_0000_0000_0000",
            "\"0x1_0000_0000_0000_0000\" is out of range (more than 64 bits)",
        ),
    ] {
        assert_eq!(
            vcpus(v).unwrap_err().to_string(),
            format!("vm \"web\" (line 5): field \"vcpus\": {reason}"),
            "{v}"
        );
    }
    // The largest u64 reads; the range check then refuses it.
    assert_eq!(
        vcpus("0xffff_ffff_ffff_ffff").unwrap_err().reason,
        format!("18446744073709551615 is out of range (1..={MAX_VCPUS})")
    );
}

#[test]
fn bad_values_and_trailing_text() {
    for (line, msg) in [
        ("vcpus =", "field \"vcpus\": missing value"),
        ("vcpus = # c", "field \"vcpus\": missing value"),
        ("vcpus = 2 3", "field \"vcpus\": unexpected \"3\" after the value"),
        ("autostart = yes", "field \"autostart\": expected a value (string, integer, boolean, array or inline table), found \"yes\""),
        ("autostart = True", "field \"autostart\": expected a value (string, integer, boolean, array or inline table), found \"True\""),
        ("cpus = [0, [1]]", "field \"cpus\": arrays cannot be nested"),
        ("cpus = [{ a = 1 }]", "field \"cpus\": inline tables cannot be nested"),
        ("cpus = [0 1]", "field \"cpus\": expected \",\" or \"]\" in an array, found \"1]\""),
        ("cpus = [0,", "field \"cpus\": missing value"),
        ("cpus = [0, \"1\"]", "field \"cpus\": mixed types in an array (a string after an integer)"),
        ("cpus = [true]", "field \"cpus\": arrays hold integers or strings"),
        ("disk = { file = \"a\" readonly = true }", "field \"disk\": expected \",\" or \"}\" in an inline table, found \"readonly = true }\""),
        ("disk = { file = \"a\", }", "field \"disk\": expected a key in an inline table, found \"}\""),
        ("disk = { file \"a\" }", "field \"disk\": expected \"=\" after \"file\" in an inline table, found \"\\\"a\\\" }\""),
        ("disk = { file = \"a\", file = \"b\" }", "field \"disk\": key \"file\" given twice in an inline table"),
        ("disk = { file = [1] }", "field \"disk\": arrays cannot be nested"),
    ] {
        assert_eq!(
            refused(&with(line)),
            format!("vm \"web\" (line 5): {msg}"),
            "{line}"
        );
    }
}

// ---- the table's keys --------------------------------------------------------------------------

#[test]
fn unknown_and_duplicate_keys() {
    assert_eq!(
        refused(&with("cpu = [1]")),
        "vm \"web\" (line 5): field \"cpu\": unknown key (known: name, vcpus, cpus, memory, kernel, firmware, initrd, cmdline, devices, disk, vars, mac, autostart)"
    );
    assert_eq!(
        refused(&with("memory = \"512M\"")),
        "vm \"web\" (line 5): field \"memory\": given twice (first at line 3)"
    );
}

#[test]
fn required_keys() {
    assert_eq!(
        refused("[[vm]]\nmemory = \"16M\"\nkernel = \"k\"\n"),
        "line 1: field \"name\": missing: every [[vm]] needs one"
    );
    assert_eq!(
        refused("\n[[vm]]\nname = \"a\"\nkernel = \"k\"\n"),
        "vm \"a\" (line 2): field \"memory\": missing: every [[vm]] needs one"
    );
    assert_eq!(
        refused("[[vm]]\nname = \"a\"\nmemory = \"16M\"\n"),
        "vm \"a\" (line 1): field \"kernel\": missing: every [[vm]] needs a kernel or a firmware"
    );
}

#[test]
fn the_first_error_in_line_order_wins_and_a_later_name_still_labels_it() {
    assert_eq!(
        refused("[[vm]]\nvcpus = 0\nmemory = \"1M\"\nname = \"late\"\nkernel = \"k\"\n"),
        "vm \"late\" (line 2): field \"vcpus\": 0 is out of range (1..=123)"
    );
}

#[test]
fn name_rules() {
    for (v, reason) in [
        (
            "\"\"",
            "\"\" is not 1 to 16 characters of a-z, 0-9, _ and -",
        ),
        (
            "\"Web\"",
            "\"Web\" is not 1 to 16 characters of a-z, 0-9, _ and -",
        ),
        (
            "\"a b\"",
            "\"a b\" is not 1 to 16 characters of a-z, 0-9, _ and -",
        ),
        (
            "\"é\"",
            "\"é\" is not 1 to 16 characters of a-z, 0-9, _ and -",
        ),
        (
            "\"abcdefghijklmnopq\"",
            "\"abcdefghijklmnopq\" is not 1 to 16 characters of a-z, 0-9, _ and -",
        ),
        ("1", "expected a string, found an integer"),
    ] {
        let text = format!("[[vm]]\nname = {v}\nmemory = \"16M\"\nkernel = \"k\"\n");
        assert_eq!(
            refused(&text),
            format!("line 2: field \"name\": {reason}"),
            "{v}"
        );
    }
    let sixteen = "abcdefghijklmnop";
    assert_eq!(one(&BASE.replace("web", sixteen)).unwrap().name, sixteen);
}

#[test]
fn names_are_unique_in_the_file() {
    let all = parse(&format!("{BASE}{BASE}"));
    assert_eq!(all.len(), 2);
    assert!(all[0].is_ok());
    assert_eq!(
        all[1].as_ref().unwrap_err().to_string(),
        "vm \"web\" (line 6): field \"name\": \"web\" is already the name of the VM at line 2"
    );
}

#[test]
fn at_most_max_vms_tables() {
    let text: String = (0..MAX_VMS + 2)
        .map(|i| BASE.replace("web", &format!("vm{i}")))
        .collect();
    let all = parse(&text);
    assert_eq!(all.len(), MAX_VMS + 2);
    assert!(all[..MAX_VMS].iter().all(Result::is_ok));
    assert_eq!(
        all[MAX_VMS].as_ref().unwrap_err().to_string(),
        "vm \"vm8\" (line 33): more than 8 VMs: at most 8 [[vm]] tables"
    );
    assert!(all[MAX_VMS + 1].is_err());
}

#[test]
fn vcpus_range() {
    let vcpus = |n: u32| one(&with(&format!("vcpus = {n}"))).map(|vm| vm.vcpus);
    assert_eq!(vcpus(1), Ok(1));
    assert_eq!(vcpus(MAX_VCPUS), Ok(MAX_VCPUS));
    assert_eq!(
        vcpus(MAX_VCPUS + 1).unwrap_err().to_string(),
        "vm \"web\" (line 5): field \"vcpus\": 124 is out of range (1..=123)"
    );
    assert_eq!(
        refused(&with("vcpus = \"2\"")),
        "vm \"web\" (line 5): field \"vcpus\": expected an integer, found a string"
    );
}

#[test]
fn cpus_rules() {
    assert_eq!(one(&with("cpus = [2]")).unwrap().cpus, Some(1 << 2));
    for (v, reason) in [
        (
            "[]",
            "empty: name at least one CPU, or leave cpus out for any",
        ),
        ("[64]", "CPU 64 is out of range (0..=63)"),
        ("[1, 2, 1]", "CPU 1 listed twice"),
        (
            "[\"0\"]",
            "expected an array of CPU numbers, found an array",
        ),
        ("3", "expected an array of CPU numbers, found an integer"),
    ] {
        assert_eq!(
            refused(&with(&format!("cpus = {v}"))),
            format!("vm \"web\" (line 5): field \"cpus\": {reason}"),
            "{v}"
        );
    }
}

#[test]
fn memory_rules() {
    let mem = |v: &str| {
        one(&BASE.replace("\"256M\"", v)).map_err(|e| {
            assert_eq!(e.line, 3);
            assert_eq!(e.field.as_deref(), Some("memory"));
            e.reason
        })
    };
    assert_eq!(mem("\"1G\"").map(|vm| vm.mem_size), Ok(1 << 30));
    assert_eq!(mem("\"16384K\"").map(|vm| vm.mem_size), Ok(16 << 20));
    assert_eq!(mem("0x2000000").map(|vm| vm.mem_size), Ok(32 << 20));
    assert_eq!(mem("\"16G\"").map(|vm| vm.mem_size), Ok(MAX_MEM));
    for (v, reason) in [
        ("\"3M\"", "3 MiB is not a multiple of 2 MiB"),
        ("\"1025K\"", "1025 KiB is not a multiple of 2 MiB"),
        ("16777217", "16777217 bytes is not a multiple of 2 MiB"),
        ("\"14M\"", "14 MiB is out of range (16 MiB..=16 GiB)"),
        ("0", "0 bytes is out of range (16 MiB..=16 GiB)"),
        ("\"18G\"", "18 GiB is out of range (16 MiB..=16 GiB)"),
        (
            "\"256\"",
            "expected a size like \"256M\", \"1G\" or \"65536K\", found \"256\"",
        ),
        (
            "\"256MiB\"",
            "expected a size like \"256M\", \"1G\" or \"65536K\", found \"256MiB\"",
        ),
        (
            "\"1.5G\"",
            "expected a size like \"256M\", \"1G\" or \"65536K\", found \"1.5G\"",
        ),
        (
            "\"16\u{fffd}\"",
            "expected a size like \"256M\", \"1G\" or \"65536K\", found \"16\u{fffd}\"",
        ),
        (
            "\"16éM\"",
            "expected a size like \"256M\", \"1G\" or \"65536K\", found \"16éM\"",
        ),
        (
            "\"m\"",
            "expected a size like \"256M\", \"1G\" or \"65536K\", found \"m\"",
        ),
        (
            "\"99999999999G\"",
            "expected a size like \"256M\", \"1G\" or \"65536K\", found \"99999999999G\"",
        ),
        (
            "true",
            "expected a size (\"256M\") or bytes, found a boolean",
        ),
    ] {
        assert_eq!(mem(v).unwrap_err(), reason, "{v}");
    }
}

#[test]
fn kernel_and_initrd_sources() {
    assert_eq!(
        one(&with("initrd = { size = 1, addr = 0 }"))
            .unwrap()
            .initrd,
        Some(Source::Memory { addr: 0, size: 1 })
    );
    for (line, msg) in [
        ("initrd = \"\"", "field \"initrd\": empty file name"),
        (
            "initrd = 5",
            "field \"initrd\": expected a file name or { addr = .., size = .. }, found an integer",
        ),
        ("initrd = { addr = 0 }", "field \"initrd.size\": missing"),
        ("initrd = { size = 1 }", "field \"initrd.addr\": missing"),
        (
            "initrd = { addr = 0, size = 0 }",
            "field \"initrd.size\": must not be zero",
        ),
        (
            "initrd = { addr = 0, size = 1, file = \"x\" }",
            "field \"initrd.file\": unknown key (known: addr, size)",
        ),
        (
            "initrd = { addr = \"0\", size = 1 }",
            "field \"initrd.addr\": expected an integer, found a string",
        ),
        (
            "initrd = { addr = 0xffff_ffff_ffff_ffff, size = 1 }",
            "field \"initrd\": 0xffffffffffffffff + 0x1 is past the end of the address space",
        ),
    ] {
        assert_eq!(
            refused(&with(line)),
            format!("vm \"web\" (line 5): {msg}"),
            "{line}"
        );
    }
    assert_eq!(
        refused(&BASE.replace("\"Image\"", "[\"Image\"]")),
        "vm \"web\" (line 4): field \"kernel\": expected a file name or { addr = .., size = .. }, found an array"
    );
}

#[test]
fn cmdline_and_autostart_types() {
    assert_eq!(
        refused(&with("cmdline = 1")),
        "vm \"web\" (line 5): field \"cmdline\": expected a string, found an integer"
    );
    assert_eq!(
        refused(&with("autostart = \"no\"")),
        "vm \"web\" (line 5): field \"autostart\": expected a boolean, found a string"
    );
}

#[test]
fn devices_rules() {
    assert_eq!(one(&with("devices = []")).unwrap().devices, DeviceSet::NONE);
    assert_eq!(
        one(&with("devices = [\"virtio-rng\"]")).unwrap().devices,
        DeviceSet::VIRTIO_RNG
    );
    for (v, reason) in [
        ("[\"pl011\", \"pl011\"]", "\"pl011\" listed twice"),
        ("[\"virtio-gpu\"]", "unknown device \"virtio-gpu\" (known: pl011, pl031, virtio-console, virtio-blk, virtio-net, virtio-rng)"),
        ("[1]", "expected an array of device names, found an array"),
        ("\"pl011\"", "expected an array of device names, found a string"),
    ] {
        assert_eq!(
            refused(&with(&format!("devices = {v}"))),
            format!("vm \"web\" (line 5): field \"devices\": {reason}"),
            "{v}"
        );
    }
}

#[test]
fn disk_rules() {
    let blk = "devices = [\"virtio-blk\"]\n";
    assert_eq!(
        one(&with(&format!("{blk}disk = \"d.img\""))).unwrap().disk,
        Some(Disk {
            file: Some("d.img".into()),
            readonly: false,
            offset: 0,
            size: None,
        })
    );
    assert_eq!(
        one(&with(&format!("{blk}disk = {{ file = \"d\" }}")))
            .unwrap()
            .disk,
        Some(Disk {
            file: Some("d".into()),
            readonly: false,
            offset: 0,
            size: None,
        })
    );
    for (v, msg) in [
        ("\"\"", "field \"disk\": empty file name"),
        ("{ file = \"\" }", "field \"disk.file\": empty file name"),
        (
            "{ file = 1 }",
            "field \"disk.file\": expected a string, found an integer",
        ),
        (
            "{ file = \"d\", readonly = 1 }",
            "field \"disk.readonly\": expected a boolean, found an integer",
        ),
        (
            "{ file = \"d\", start = 1 }",
            "field \"disk.start\": unknown key (known: file, readonly, offset, size)",
        ),
        (
            "{ file = \"d\", offset = 1000 }",
            "field \"disk.offset\": 1000 bytes is not a multiple of 512 bytes",
        ),
        (
            "{ file = \"d\", size = \"1\" }",
            "field \"disk.size\": expected a size like \"256M\", \"1G\" or \"65536K\", found \"1\"",
        ),
        (
            "{ file = \"d\", size = true }",
            "field \"disk.size\": expected a size (\"256M\") or bytes, found a boolean",
        ),
        ("{ file = \"d\", size = 0 }", "field \"disk.size\": must not be zero"),
        (
            "{ file = \"d\", offset = 0xffff_ffff_ffff_fe00, size = 512 }",
            "field \"disk\": offset 0xfffffffffffffe00 + size 0x200 is past the end of any disk",
        ),
        (
            "true",
            "field \"disk\": expected a file name or { file = .., offset = .., size = .., readonly = .. }, found a boolean",
        ),
    ] {
        assert_eq!(
            refused(&with(&format!("{blk}disk = {v}"))),
            format!("vm \"web\" (line 6): {msg}"),
            "{v}"
        );
    }
    // `file` is for the host tool; a slice needs none.
    assert_eq!(
        one(&with(&format!(
            "{blk}disk = {{ offset = \"1M\", size = \"2M\" }}"
        )))
        .unwrap()
        .disk,
        Some(Disk {
            file: None,
            readonly: false,
            offset: 1 << 20,
            size: Some(2 << 20),
        })
    );
    assert_eq!(
        one(&with(&format!("{blk}disk = {{ readonly = true }}")))
            .unwrap()
            .disk,
        Some(Disk {
            file: None,
            readonly: true,
            offset: 0,
            size: None,
        })
    );
    assert_eq!(
        refused(&with("disk = \"d\"\ndevices = [\"pl011\"]")),
        "vm \"web\" (line 5): field \"disk\": a disk needs \"virtio-blk\" in devices"
    );
}

#[test]
fn a_disk_slice_is_an_lba_range_of_the_machine_s_disk() {
    let blk = "devices = [\"virtio-blk\"]\n";
    let vm = one(&with(&format!(
        "{blk}disk = {{ file = \"d\", offset = \"64M\", size = 0x800_0000, readonly = true }}"
    )))
    .unwrap();
    assert_eq!(
        vm.disk,
        Some(Disk {
            file: Some("d".into()),
            readonly: true,
            offset: 64 << 20,
            size: Some(128 << 20),
        })
    );
    assert_eq!(
        vm.disk_slice(),
        DiskSlice {
            start: (64 << 20) / 512,
            sectors: (128 << 20) / 512,
            read_only: true,
        }
    );
    assert_eq!(vm.writable_disk(), None, "read-only");
    // Offset alone: to the end of the disk. No disk key: the whole disk, writable.
    let vm = one(&with(&format!(
        "{blk}disk = {{ file = \"d\", offset = 1024 }}"
    )))
    .unwrap();
    assert_eq!(
        vm.disk_slice(),
        DiskSlice {
            start: 2,
            sectors: 0,
            read_only: false
        }
    );
    assert_eq!(vm.writable_disk(), Some((1024, None)));
    let vm = one(&with(blk)).unwrap();
    assert_eq!(vm.disk_slice(), DiskSlice::WHOLE);
    assert_eq!(vm.writable_disk(), Some((0, None)));
    assert_eq!(one(BASE).unwrap().writable_disk(), None, "no virtio-blk");
}

/// `count` VMs, `vm0`, `vm1`, ..., each with virtio-blk and the `disk` line given (none if
/// empty); each table is 6 lines.
fn disks(lines: &[&str]) -> Vec<Result<VmDesc, ConfigError>> {
    let text: String = lines
        .iter()
        .enumerate()
        .map(|(i, d)| {
            format!(
                "[[vm]]\nname = \"vm{i}\"\nmemory = \"16M\"\nkernel = \"k\"\n\
                 devices = [\"virtio-blk\"]\n{d}\n"
            )
        })
        .collect();
    parse(&text)
}

#[test]
fn overlapping_writable_slices_are_refused_naming_both_vms() {
    // Disjoint and touching slices, and read-only ones over them, are fine.
    let ok = disks(&[
        "disk = { file = \"d\", offset = \"1M\", size = \"2M\" }",
        "disk = { file = \"d\", offset = \"3M\", size = \"1M\" }",
        "disk = { file = \"d\", size = \"1M\" }",
        "disk = { file = \"d\", readonly = true }",
        "disk = { file = \"d\", offset = \"4M\" }",
    ]);
    assert!(ok.iter().all(Result::is_ok), "{ok:?}");
    let all = disks(&[
        "disk = { file = \"d\", offset = \"1M\", size = \"2M\" }",
        "disk = { file = \"d\", offset = 0x2f_fe00, size = 512 }",
        "disk = { file = \"d\", offset = \"8M\" }",
        "disk = { file = \"d\", offset = \"1G\", size = \"1M\" }",
        "",
    ]);
    assert!(all[0].is_ok());
    assert_eq!(
        all[1].as_ref().unwrap_err().to_string(),
        "vm \"vm1\" (line 12): field \"disk\": its writable part of the machine's disk \
         (3145216 bytes..3 MiB) overlaps that of vm \"vm0\" (line 6, 1 MiB..3 MiB): give the \
         two disjoint slices (offset, size) or make one readonly"
    );
    assert!(all[2].is_ok(), "8M on");
    assert!(
        all[3]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("(1 GiB..1025 MiB) overlaps that of vm \"vm2\" (line 18, 8 MiB..the end)"),
        "{:?}",
        all[3]
    );
    // Without a disk key the VM has the whole disk: the line is its `devices`.
    assert!(
        all[4].as_ref().unwrap_err().to_string().starts_with(
            "vm \"vm4\" (line 29): field \"disk\": its writable part of the machine's disk \
             (the whole disk) overlaps that of vm \"vm0\""
        ),
        "{:?}",
        all[4]
    );
    // A refused VM claims nothing: the one after it may take those sectors.
    let after_refused = disks(&[
        "disk = { file = \"d\", size = \"1M\" }",
        "disk = { file = \"d\", offset = \"512K\", size = \"1M\" }",
        "disk = { file = \"d\", offset = \"1M\", size = \"1M\" }",
    ]);
    assert!(after_refused[1].is_err());
    assert!(after_refused[2].is_ok(), "{:?}", after_refused[2]);
}

#[test]
fn mac_rules() {
    let net = "devices = [\"virtio-net\"]\n";
    assert_eq!(
        one(&with(&format!("{net}mac = \"02:00:00:00:00:01\"")))
            .unwrap()
            .mac,
        Mac::unicast([2, 0, 0, 0, 0, 1])
    );
    for (v, reason) in [
        (
            "\"52:54:00:12:34\"",
            "expected six hex octets like \"52:54:00:12:34:56\", found \"52:54:00:12:34\"",
        ),
        (
            "\"52:54:00:12:34:56:78\"",
            "expected six hex octets like \"52:54:00:12:34:56\", found \"52:54:00:12:34:56:78\"",
        ),
        (
            "\"52:54:00:12:34:5\"",
            "expected six hex octets like \"52:54:00:12:34:56\", found \"52:54:00:12:34:5\"",
        ),
        (
            "\"52:54:00:12:34:5g\"",
            "expected six hex octets like \"52:54:00:12:34:56\", found \"52:54:00:12:34:5g\"",
        ),
        (
            "\"+2:54:00:12:34:56\"",
            "expected six hex octets like \"52:54:00:12:34:56\", found \"+2:54:00:12:34:56\"",
        ),
        (
            "\"01:00:5e:00:00:01\"",
            "\"01:00:5e:00:00:01\" is a multicast address (first octet odd)",
        ),
        ("\"00:00:00:00:00:00\"", "the all-zero address"),
        (
            "\"02:72:68:00:01:00\"",
            "\"02:72:68:00:01:00\" is reserved for rhyve's default addresses (02:72:68:xx:xx:xx)",
        ),
        (
            "\"02:72:68:FF:ff:07\"",
            "\"02:72:68:FF:ff:07\" is reserved for rhyve's default addresses (02:72:68:xx:xx:xx)",
        ),
        ("1", "expected a string, found an integer"),
    ] {
        assert_eq!(
            refused(&with(&format!("{net}mac = {v}"))),
            format!("vm \"web\" (line 6): field \"mac\": {reason}"),
            "{v}"
        );
    }
    assert_eq!(
        refused(&with("mac = \"52:54:00:12:34:56\"")),
        "vm \"web\" (line 5): field \"mac\": a MAC address needs \"virtio-net\" in devices"
    );
}

#[test]
fn no_configured_mac_is_a_default_one() {
    // Every address rhyve gives by default is refused in a description.
    let net = "devices = [\"virtio-net\"]\n";
    for vm in [0, 1, 7, 255, 256, u16::MAX] {
        let m = Mac::default_for(vm, 0);
        let e = refused(&with(&format!("{net}mac = \"{m}\"")));
        assert!(
            e.contains("is reserved for rhyve's default addresses"),
            "{e}"
        );
    }
    // Next to the range is fine.
    for m in [
        "02:72:69:00:00:00",
        "02:73:68:00:00:00",
        "06:72:68:00:00:00",
    ] {
        assert!(one(&with(&format!("{net}mac = \"{m}\""))).is_ok(), "{m}");
    }
}

/// VMs `vm0`, `vm1`, ..., each with virtio-net and virtio-blk, then the extra lines given
/// (from its 6th line on) and a blank line.
fn cards(lines: &[&str]) -> Vec<Result<VmDesc, ConfigError>> {
    let text: String = lines
        .iter()
        .enumerate()
        .map(|(i, extra)| {
            format!(
                "[[vm]]\nname = \"vm{i}\"\nmemory = \"16M\"\nkernel = \"k\"\n\
                 devices = [\"virtio-net\", \"virtio-blk\"]\n{extra}\n\n"
            )
        })
        .collect();
    parse(&text)
}

#[test]
fn duplicate_macs_are_refused_naming_the_first_vm() {
    let all = cards(&[
        "mac = \"52:54:00:12:34:56\"\ndisk = { size = \"1M\" }",
        "mac = \"52:54:00:12:34:57\"\ndisk = { offset = \"1M\", size = \"1M\" }",
        // vm0's address, then vm1's after the disk line; no disk overlaps.
        "mac = \"52:54:00:12:34:56\"\ndisk = { offset = \"2M\", size = \"1M\" }",
        "disk = { offset = \"3M\", size = \"1M\" }\nmac = \"52:54:00:12:34:57\"",
    ]);
    assert!(all[0].is_ok() && all[1].is_ok(), "{all:?}");
    assert_eq!(
        all[2].as_ref().unwrap_err().to_string(),
        "vm \"vm2\" (line 22): field \"mac\": 52:54:00:12:34:56 is already the address of \
         vm \"vm0\" (line 6): give each VM its own, or none for rhyve's default"
    );
    assert_eq!(
        all[3].as_ref().unwrap_err().to_string(),
        "vm \"vm3\" (line 31): field \"mac\": 52:54:00:12:34:57 is already the address of \
         vm \"vm1\" (line 14): give each VM its own, or none for rhyve's default"
    );
    // The same address in capitals is the same address.
    let upper = cards(&[
        "mac = \"52:54:00:AB:CD:EF\"\ndisk = { readonly = true }",
        "mac = \"52:54:00:ab:cd:ef\"\ndisk = { readonly = true }",
    ]);
    assert!(
        upper[1]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("52:54:00:ab:cd:ef is already the address of vm \"vm0\" (line 6)"),
        "{upper:?}"
    );
    // VMs without a mac (rhyve's defaults) never clash.
    let ro = "disk = { readonly = true }";
    assert!(cards(&[ro, ro]).iter().all(Result::is_ok));
}

#[test]
fn a_vm_refused_for_its_mac_or_disk_holds_neither() {
    let all = cards(&[
        "mac = \"52:54:00:00:00:01\"\ndisk = { size = \"1M\" }",
        // Refused for its MAC: its disk slice stays free.
        "mac = \"52:54:00:00:00:01\"\ndisk = { offset = \"1M\", size = \"1M\" }",
        "mac = \"52:54:00:00:00:02\"\ndisk = { offset = \"1M\", size = \"1M\" }",
        // Refused for its disk: its MAC stays free.
        "mac = \"52:54:00:00:00:03\"\ndisk = { offset = \"1M\", size = \"1M\" }",
        "mac = \"52:54:00:00:00:03\"\ndisk = { offset = \"2M\", size = \"1M\" }",
    ]);
    let ok: Vec<bool> = all.iter().map(Result::is_ok).collect();
    assert_eq!(ok, [true, false, true, false, true], "{all:?}");
    assert!(all[3]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("overlaps that of vm \"vm2\""));
}

// ---- writing back -------------------------------------------------------------------------------

#[test]
fn to_toml_round_trips() {
    let full = VmDesc {
        name: "x-1".into(),
        vcpus: 3,
        cpus: Some(1 << 5 | 1 << 63),
        mem_size: 34 << 20,
        kernel: Some(Source::Memory {
            addr: 0x4800_0000,
            size: 0x10_0000,
        }),
        firmware: None,
        initrd: Some(Source::Bundle("a \"b\"\\c\nd\te".into())),
        cmdline: "console=ttyAMA0 # not a comment".into(),
        devices: DeviceSet::VIRTIO_BLK.with(DeviceSet::VIRTIO_NET),
        disk: Some(Disk {
            file: Some("d".into()),
            readonly: true,
            offset: 0,
            size: None,
        }),
        vars: None,
        mac: Mac::unicast([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
        autostart: false,
    };
    let mut unnamed = full.clone();
    unnamed.disk = Some(Disk {
        file: None,
        readonly: false,
        offset: 0,
        size: Some(2 << 20),
    });
    assert!(
        unnamed
            .to_toml()
            .contains("disk = { size = \"2M\", readonly = false }\n"),
        "{}",
        unnamed.to_toml()
    );
    let mut sliced = full.clone();
    sliced.disk = Some(Disk {
        file: Some("d".into()),
        readonly: false,
        offset: 64 << 20,
        size: Some(1536),
    });
    assert!(
        sliced
            .to_toml()
            .contains("disk = { file = \"d\", offset = \"64M\", size = 1536, readonly = false }\n"),
        "{}",
        sliced.to_toml()
    );
    for vm in [base_desc(), full, sliced, unnamed] {
        let text = vm.to_toml();
        assert_eq!(one(&text), Ok(vm.clone()), "{text}");
    }
    assert_eq!(
        base_desc().to_toml(),
        "[[vm]]\nname = \"web\"\nvcpus = 1\nmemory = \"256M\"\nkernel = \"Image\"\n\
         cmdline = \"\"\ndevices = [\"pl011\", \"pl031\"]\nautostart = true\n"
    );
}

#[test]
fn bundle_files_lists_kernel_then_initrd() {
    let mut vm = base_desc();
    vm.initrd = Some(Source::Bundle("rd".into()));
    assert_eq!(vm.bundle_files().collect::<Vec<_>>(), ["Image", "rd"]);
    vm.kernel = Some(Source::Memory { addr: 0, size: 1 });
    assert_eq!(vm.bundle_files().collect::<Vec<_>>(), ["rd"]);
}

#[test]
fn firmware_instead_of_a_kernel() {
    let text = "[[vm]]\nname = \"fw\"\nmemory = \"256M\"\nfirmware = \"QEMU_EFI.fd\"\n\
                devices = [\"pl011\", \"pl031\", \"virtio-blk\"]\n";
    let vm = one(text).unwrap();
    assert_eq!(vm.kernel, None);
    assert_eq!(vm.firmware, Some(Source::Bundle("QEMU_EFI.fd".into())));
    assert_eq!(vm.bundle_files().collect::<Vec<_>>(), ["QEMU_EFI.fd"]);
    assert_eq!(one(&vm.to_toml()), Ok(vm.clone()), "it writes back");
    let both = format!("{text}kernel = \"Image\"\n");
    assert_eq!(
        one(&both).unwrap_err().to_string(),
        "vm \"fw\" (line 4): field \"firmware\": a VM boots a kernel or a firmware, not both (the firmware loads the OS from the VM's disk)"
    );
    let initrd = format!("{text}initrd = \"rd\"\n");
    assert_eq!(one(&initrd).unwrap_err().field.as_deref(), Some("initrd"));
    let cmdline = format!("{text}cmdline = \"quiet\"\n");
    assert_eq!(one(&cmdline).unwrap_err().field.as_deref(), Some("cmdline"));
    assert!(
        one(&format!("{text}cmdline = \"\"\n")).is_ok(),
        "an empty one is none"
    );
}

#[test]
fn any_text_gets_an_answer() {
    // Cut a full description at every character: each prefix gives a result, no panic.
    let text = "[[vm]]\nname = \"é-1\"\ncpus = [0, 1,]\nmemory = 0x1000_0000\n\
                kernel = { addr = 1, size = 2 }\ncmdline = \"a\\\"b\\\\\"\n";
    for (i, _) in text.char_indices() {
        let _ = parse(&text[..i]);
    }
    for s in [
        "[", "[[", "[[vm", "=", "a=", "a=[", "a={", "a=\"", "a=0x", "\u{0}", "a=[,]",
    ] {
        assert!(!parse(s).is_empty(), "{s:?}");
    }
}

#[test]
fn a_variable_store_on_the_machine_s_disk() {
    let fw = "[[vm]]\nname = \"fw\"\nmemory = \"256M\"\nfirmware = \"QEMU_EFI.fd\"\n\
              devices = [\"pl011\", \"virtio-blk\"]\ndisk = { size = \"64M\" }\n";
    let vm = one(&format!("{fw}vars = {{ offset = \"64M\" }}\n")).unwrap();
    assert_eq!(
        vm.vars,
        Some(Vars {
            offset: 64 << 20,
            size: MAX_VARS
        })
    );
    assert_eq!(vm.vars.unwrap().slice().start, (64 << 20) / 512);
    assert_eq!(one(&vm.to_toml()), Ok(vm.clone()), "it writes back");
    let sized = one(&format!(
        "{fw}vars = {{ offset = \"64M\", size = \"1M\" }}\n"
    ))
    .unwrap();
    assert_eq!(sized.vars.unwrap().size, 1 << 20);
    let refusal = |extra: &str| one(&format!("{fw}{extra}")).unwrap_err().to_string();
    assert!(
        refusal("vars = { offset = \"32M\" }\n").contains("overlaps the VM's own writable disk"),
        "{}",
        refusal("vars = { offset = \"32M\" }\n")
    );
    assert!(refusal("vars = { size = \"1M\" }\n").contains("vars.offset"));
    assert!(refusal("vars = { offset = \"64M\", size = \"128M\" }\n").contains("vars.size"));
    assert!(refusal("vars = { offset = 100 }\n").contains("multiple of"));
    assert!(refusal("vars = \"x\"\n").contains("expected"));
    let kernel = format!("{BASE}vars = {{ offset = \"64M\" }}\n");
    assert!(one(&kernel)
        .unwrap_err()
        .to_string()
        .contains("only a VM that boots a firmware"));
    // Another VM's writable disk over the store: the later VM is refused.
    let two = format!(
        "{fw}vars = {{ offset = \"64M\" }}\n[[vm]]\nname = \"b\"\nmemory = \"16M\"\nkernel = \"k\"\n\
         devices = [\"virtio-blk\"]\ndisk = {{ offset = \"100M\", size = \"1M\" }}\n"
    );
    let all = parse(&two);
    assert!(all[0].is_ok());
    assert!(
        all[1].as_ref().unwrap_err().reason.contains("overlaps"),
        "{:?}",
        all[1]
    );
}
