//! `handoff`, `handoff-image`: tests/guests/src/bin/handoff.rs, a raw bare-metal program
//! written as one for QEMU virt's `-kernel` is, checks the state it is entered in (x0 a device
//! tree above its image, x1-x3 zero, the initrd clear of both, EL1 with the MMU off) and says
//! where it found things. Both scenarios also pass with `--straight`, QEMU alone: that is the
//! point, the handoff is QEMU's.
//!
//! - `handoff`: the raw binary, 128 MiB of RAM, an initrd.
//! - `handoff-image`: the same program behind an arm64 Image header whose `text_offset` is
//!   0x7f000 (so the program itself lands at 0x80000, where it is linked) and whose
//!   `image_size` claims 80 MiB, more than half the RAM: the initrd and the tree must follow
//!   the size the header claims, not the file's.
//!
//! Checks: every case PASS (`common::hostile::check`), and the guest's `RHYVE-HANDOFF` line
//! (x0, its entry, the initrd's range) equal to `vmboot::loader::layout` for the same files
//! and RAM, so rhyve and QEMU are both held to the loader's documented rules.

use std::path::PathBuf;

use vmboot::image;
use vmboot::loader::{self, DtbPlacement};

use super::common::hostile;
use super::Scenario;
use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::Capture;
use crate::{sys, toolchain};

/// Every case the guest must pass.
const CASES: &[&str] = &[
    "dtb-magic",
    "dtb-above-image",
    "dtb-in-ram",
    "initrd-clear",
    "x1-x3-zero",
    "el1",
    "mmu-off",
];
/// Guest RAM.
const MEM_MIB: u64 = 128;
/// The initrd's length: not a page multiple, so the tree's alignment after it shows.
const INITRD_LEN: usize = 0x1_2345;
/// The wrapped program's `text_offset`: one page below where it is linked (0x80000).
const WRAP_TEXT_OFFSET: u64 = 0x7_f000;
/// What the wrapper's header claims the image occupies.
const WRAP_IMAGE_SIZE: u64 = 80 << 20;
/// `b #0x1000`: code0 of the wrapper, over the header and its padding to the program.
const BRANCH_ONE_PAGE: u32 = 0x1400_0400;

/// One handoff scenario.
struct Handoff {
    name: &'static str,
    /// Behind an Image header ([`WRAP_TEXT_OFFSET`], [`WRAP_IMAGE_SIZE`]) or raw.
    image: bool,
}

fn dir() -> PathBuf {
    sys::build_dir().join("handoff")
}

fn initrd_path() -> PathBuf {
    dir().join("initrd.bin")
}

fn kernel_path(image: bool) -> PathBuf {
    if image {
        dir().join("handoff-image.bin")
    } else {
        toolchain::test_guest_bin("handoff")
    }
}

/// The initrd: a pattern, so a stray write into it would not go unseen by a reader.
fn initrd_bytes() -> Vec<u8> {
    (0..INITRD_LEN).map(|i| (i * 31 + 7) as u8).collect()
}

/// The raw program behind an Image header, padded to the page where the program is linked.
fn wrap(raw: &[u8]) -> Vec<u8> {
    let pad = (RAW_LINK_OFFSET - WRAP_TEXT_OFFSET) as usize;
    let mut k = image::header(BRANCH_ONE_PAGE, WRAP_TEXT_OFFSET, WRAP_IMAGE_SIZE, 0).to_vec();
    k.resize(pad, 0);
    k.extend_from_slice(raw);
    k
}

/// Where linker/test-guest.ld links the test guests, from RAM base.
const RAW_LINK_OFFSET: u64 = loader::RAW_KERNEL_OFFSET;

/// Writes the initrd and (for `image`) the wrapped kernel under `build/handoff/`.
fn write_files(image: bool) -> Result<(), String> {
    std::fs::create_dir_all(dir()).map_err(|e| format!("creating {}: {e}", dir().display()))?;
    std::fs::write(initrd_path(), initrd_bytes())
        .map_err(|e| format!("writing the initrd: {e}"))?;
    if image {
        let raw_path = kernel_path(false);
        let raw =
            std::fs::read(&raw_path).map_err(|e| format!("reading {}: {e}", raw_path.display()))?;
        std::fs::write(kernel_path(true), wrap(&raw))
            .map_err(|e| format!("writing the wrapped kernel: {e}"))?;
    }
    Ok(())
}

/// The guest's `RHYVE-HANDOFF` line, as `key=value` pairs.
fn report(console: &Capture) -> Option<Vec<(String, String)>> {
    let line = console.find("RHYVE-HANDOFF ")?;
    let at = line.text.find("RHYVE-HANDOFF ")?;
    Some(
        line.text[at..]
            .split_whitespace()
            .skip(1)
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The checks of the `RHYVE-HANDOFF` line against the loader's layout for the same files.
fn check_layout(got: &[(String, String)], expect: &loader::Layout) -> Vec<String> {
    let (initrd, initrd_end) = expect
        .initrd
        .map_or((0, 0), |(s, l)| (s.raw(), s.raw() + l));
    let want = [
        ("x0", format!("{:#x}", expect.dtb.raw())),
        (
            "entry",
            format!("{:#x}", expect.kernel.0.raw() + entry_skip(expect)),
        ),
        ("initrd", format!("{initrd:#x}-{initrd_end:#x}")),
    ];
    let mut failures = Vec::new();
    for (key, value) in want {
        match got.iter().find(|(k, _)| k == key) {
            Some((_, v)) if *v == value => {}
            Some((_, v)) => failures.push(format!("{key}={v}, the loader's rules say {value}")),
            None => failures.push(format!("no {key}= in the RHYVE-HANDOFF line")),
        }
    }
    failures
}

/// The guest reports where `_start` runs: past the wrapper's header page, if any.
fn entry_skip(expect: &loader::Layout) -> u64 {
    let from_base = expect.kernel.0.raw() - abi::layout::RAM_BASE.raw();
    RAW_LINK_OFFSET - from_base
}

impl Scenario for Handoff {
    fn name(&self) -> String {
        self.name.into()
    }

    fn boot(&self, _: &GuestFiles) -> GuestBoot {
        GuestBoot {
            kernel: kernel_path(self.image),
            initrd: Some(initrd_path()),
            cmdline: String::new(),
            vcpus: 1,
            mem_mib: MEM_MIB,
        }
    }

    fn prepare(&self) -> Result<(), String> {
        write_files(self.image)
    }

    fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(120)
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let text = console.lines.iter().map(|l| l.text.as_str());
        let mut failures = hostile::check("handoff", CASES, text);
        let kernel = match std::fs::read(kernel_path(self.image)) {
            Ok(k) => k,
            Err(e) => return vec![format!("reading the kernel: {e}")],
        };
        match loader::layout(
            &kernel,
            INITRD_LEN as u64,
            MEM_MIB << 20,
            DtbPlacement::AfterInitrd,
        ) {
            Err(e) => failures.push(format!("the loader refuses the files: {e}")),
            Ok(expect) => match report(console) {
                None => failures.push("no RHYVE-HANDOFF line".into()),
                Some(got) => failures.extend(check_layout(&got, &expect)),
            },
        }
        failures
    }
}

/// The scenarios.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(Handoff {
            name: "handoff",
            image: false,
        }),
        Box::new(Handoff {
            name: "handoff-image",
            image: true,
        }),
    ]
}
