//! Integration scenarios: each boots a guest in QEMU, captures its console to
//! `build/logs/<name>.log` and checks what it printed.
//!
//! One scenario (or one family) per file in this directory: implement [`Scenario`] and list
//! the file's scenarios in its `pub fn scenarios() -> Vec<Box<dyn Scenario>>`. `build.rs`
//! finds the files and writes their `mod` lines and [`all`]'s list, so nothing here names
//! them (nor does `cargo fmt` find them: `cargo fmt --all -- xtask/src/scenarios/*.rs`; the
//! lints name them). What several scenarios share is in [`common`].
//! Every scenario also gets the common checks of [`run`]: no `rhyve: PANIC`, and QEMU exited 0
//! by itself within the timeout (the guest powered off and the hypervisor followed).

mod common;

/// A scenario file's `scenarios`: every scenario it defines.
type ScenarioFile = fn() -> Vec<Box<dyn Scenario>>;

// The scenario files' `mod` lines and their `SCENARIO_FILES` (build.rs).
include!(concat!(env!("OUT_DIR"), "/scenario_files.rs"));

use std::path::PathBuf;
use std::time::Duration;

use crate::boot::{self, FirmwareBoot, GuestBoot, Host};
use crate::devices::disk_args;
use crate::guest::GuestFiles;
use crate::hostfw::HostFirmware;
use crate::qemu::{self, Capture, Input, Stop};
use crate::sys;

/// Printed by the hypervisor on one of its own bugs, before it halts.
pub const RHYVE_PANIC: &str = "rhyve: PANIC";
/// Printed by a Linux guest that cannot go on.
const LINUX_PANIC: &str = "Kernel panic - not syncing";
/// Console lines shown with a failure.
const TAIL_LINES: usize = 40;

/// A boot plus the checks on its console.
pub trait Scenario {
    /// A short, unique, file-name-safe name (`linux-smp-2`).
    fn name(&self) -> String;
    /// What to boot (the default guest's files are in `guest`).
    fn boot(&self, guest: &GuestFiles) -> GuestBoot;
    /// How long the run may take before it counts as hung. Generous: TCG on a small CI
    /// machine is slow, and a run ends as soon as QEMU exits anyway.
    fn timeout(&self) -> Duration {
        Duration::from_secs(600)
    }
    /// The hypervisor's own command line (QEMU `-append` for the rhyve image), for its test
    /// hooks; none by default. Ignored when the guest boots straight.
    fn hypervisor_args(&self) -> Option<String> {
        None
    }
    /// Several VMs to boot under rhyve instead of [`Scenario::boot`]'s one guest (none by
    /// default). Such a scenario cannot boot straight.
    fn vms(&self, _guest: &GuestFiles) -> Option<VmsBoot> {
        None
    }
    /// A firmware to boot instead of [`Scenario::boot`]'s kernel, and the disk it boots from
    /// (none by default): under rhyve and straight alike. Fetching the firmware and building
    /// the disk happen here; an error says why they could not.
    fn firmware(&self, _guest: &GuestFiles) -> Option<Result<FirmwareRun, String>> {
        None
    }
    /// The machine's own firmware that boots rhyve itself from the machine's disk, as a
    /// board's does, instead of QEMU's `-kernel` and `-initrd` (none by default). Such a
    /// scenario tests rhyve's boot: there is nothing of it to boot straight.
    fn host_firmware(&self) -> Option<HostFirmware> {
        None
    }
    /// Sets up what the run needs (a disk image, a generated kernel or initrd), before the
    /// bundle is written; nothing by default.
    fn prepare(&self) -> Result<(), String> {
        Ok(())
    }
    /// More QEMU arguments: devices of the machine (disks, network cards); none by default.
    fn qemu_args(&self) -> Vec<String> {
        Vec::new()
    }
    /// A board QEMU models, to run rhyve on instead of QEMU virt (none by default): its QEMU
    /// (fetched if the system's lacks it), machine and tree. Such a scenario does not run
    /// straight: see [`BOARD_STRAIGHT`]. An error says why the board could not be had.
    fn board(&self) -> Option<Result<qemu::Board, String>> {
        None
    }
    /// What to type on the console, and when (none by default).
    fn inputs(&self) -> Vec<Input> {
        Vec::new()
    }
    /// The scenario's own checks; each returned string is one reason it failed.
    fn check(&self, console: &Capture) -> Vec<String>;
}

/// Every scenario, in the order they run: by file name, then in the order each file lists
/// them.
pub fn all() -> Vec<Box<dyn Scenario>> {
    SCENARIO_FILES.iter().flat_map(|f| f()).collect()
}

/// Several VMs for one run: a configuration (`vmboot::config`) and the machine that runs it.
#[derive(Debug, Clone)]
pub struct VmsBoot {
    /// The configuration text.
    pub config: String,
    /// The files it names: the name in the bundle, the path on the host.
    pub files: Vec<(String, PathBuf)>,
    /// CPUs of the QEMU machine.
    pub smp: u32,
    /// RAM of the QEMU machine, in MiB (the VMs' and the hypervisor's).
    pub mem_mib: u64,
}

/// A firmware boot and the machine's disk, which it boots from.
#[derive(Debug, Clone)]
pub struct FirmwareRun {
    /// The firmware and the VM it runs in.
    pub boot: FirmwareBoot,
    /// The machine's disk (the firmware VM's whole virtio-blk).
    pub disk: PathBuf,
    /// Attached read-only (a cached image the guest must not change).
    pub read_only: bool,
}

/// Why a board scenario does not run with `--straight`: what it checks is rhyve's reading of
/// the board and the VM it builds there; the same kernel booted straight on the board would
/// meet the board's own devices (its UART, no PL011), so there is nothing to compare.
pub const BOARD_STRAIGHT: &str = "not run with --straight: a board scenario checks rhyve on \
    that board (its discovery and the VM it builds); booted straight, the guest would meet the \
    board's own devices instead of the VM's, so there is nothing to compare";

/// How scenarios are run.
#[derive(Debug, Clone)]
pub struct Context {
    /// Under rhyve, or straight under QEMU (to check the checks themselves).
    pub host: Host,
    /// The default guest.
    pub guest: GuestFiles,
    /// Boot with this many vCPUs whatever the scenario asks (to see a check fail).
    pub vcpus_override: Option<u32>,
    /// Use this timeout instead of the scenario's (to see the timeout path work).
    pub timeout_override: Option<Duration>,
}

/// A scenario's result.
#[derive(Debug)]
pub struct Outcome {
    /// The scenario's name.
    pub name: String,
    /// Why it failed; empty if it passed.
    pub failures: Vec<String>,
    /// The console, if QEMU ran.
    pub console: Option<Capture>,
}

impl Outcome {
    /// A scenario that could not run at all.
    pub fn not_run(name: String, why: String) -> Self {
        Self {
            name,
            failures: vec![why],
            console: None,
        }
    }

    /// Prints the failure report: the scenario, the reasons, the last console lines.
    pub fn report(&self) {
        println!("FAIL {}", self.name);
        for f in &self.failures {
            println!("  reason: {f}");
        }
        if let Some(c) = &self.console {
            println!("  log: {}", c.log.display());
            println!("  last {TAIL_LINES} console lines:");
            for l in c.tail(TAIL_LINES) {
                println!("  | [{:9.3}] {}", l.at.as_secs_f64(), l.text);
            }
        }
    }
}

/// The console log of scenario `name`.
fn log_path(name: &str) -> PathBuf {
    sys::build_dir().join("logs").join(format!("{name}.log"))
}

/// Runs one scenario and applies the common checks and its own.
pub fn run(s: &dyn Scenario, ctx: &Context) -> Outcome {
    let name = s.name();
    // First: what it sets up may be a file the bundle below packs.
    if let Err(e) = s.prepare() {
        return Outcome::not_run(name, e);
    }
    let board = match (s.board(), &ctx.host) {
        (None, _) => None,
        (Some(_), Host::Straight) => return Outcome::not_run(name, BOARD_STRAIGHT.into()),
        (Some(Ok(b)), Host::Rhyve { .. }) => Some(b),
        (Some(Err(e)), Host::Rhyve { .. }) => return Outcome::not_run(name, e),
    };
    let firmware = match s.firmware(&ctx.guest).transpose() {
        Ok(f) => f,
        Err(e) => return Outcome::not_run(name, e),
    };
    let mut boot = s.boot(&ctx.guest);
    if let Some(n) = ctx.vcpus_override {
        boot.vcpus = n;
    }
    let bundle = sys::build_dir().join("bundles").join(format!("{name}.bin"));
    let machine = match (firmware, s.vms(&ctx.guest), &ctx.host) {
        (Some(mut f), _, host) => {
            if let Some(n) = ctx.vcpus_override {
                f.boot.vcpus = n;
            }
            f.boot.machine(host, &bundle).map(|mut m| {
                m.extra
                    .extend(disk_args(&f.disk, f.read_only).into_iter().map(Into::into));
                m
            })
        }
        (None, None, Host::Straight) if s.host_firmware().is_some() => {
            return Outcome::not_run(
                name,
                "rhyve booted by the machine's firmware only runs under rhyve".into(),
            )
        }
        (None, None, Host::Rhyve { image }) => {
            boot.machine(&ctx.host, &bundle)
                .and_then(|m| match s.host_firmware() {
                    Some(f) => f.machine(m, image, &bundle),
                    None => Ok(m),
                })
        }
        (None, None, Host::Straight) => boot.machine(&ctx.host, &bundle),
        (None, Some(_), Host::Straight) => {
            return Outcome::not_run(name, "several VMs only run under rhyve".into())
        }
        (None, Some(v), Host::Rhyve { image }) => {
            boot::write_config_bundle(&v.config, &v.files, &bundle)
                .map(|()| qemu::Machine::rhyve_sized(image, &bundle, v.smp, v.mem_mib))
        }
    };
    let mut machine = match machine {
        Ok(m) => m,
        Err(e) => return Outcome::not_run(name, e.to_string()),
    };
    let board_args = board.as_ref().and_then(|b| b.hypervisor_args.clone());
    machine.board = board;
    // Booted by the machine's firmware, rhyve has no -append (no -kernel).
    if let (Host::Rhyve { .. }, None) = (&ctx.host, s.host_firmware()) {
        let args: Vec<String> = board_args.into_iter().chain(s.hypervisor_args()).collect();
        if !args.is_empty() {
            machine.append = Some(args.join(" "));
        }
    }
    machine
        .extra
        .extend(s.qemu_args().into_iter().map(Into::into));
    let stops = [
        Stop {
            marker: RHYVE_PANIC,
            grace: Duration::from_secs(2),
        },
        Stop {
            marker: LINUX_PANIC,
            grace: Duration::from_secs(5),
        },
    ];
    let console = match qemu::run_captured(
        &machine,
        &log_path(&name),
        ctx.timeout_override.unwrap_or(s.timeout()),
        &stops,
        &s.inputs(),
    ) {
        Ok(c) => c,
        Err(e) => return Outcome::not_run(name, e.to_string()),
    };
    let mut failures = Vec::new();
    if let Some(l) = console.find(RHYVE_PANIC) {
        failures.push(format!("the hypervisor panicked: {}", l.text.trim()));
    }
    if !console.exited_cleanly() {
        failures.push(format!(
            "expected QEMU to exit 0 by itself; {}",
            console.end
        ));
    }
    failures.extend(s.check(&console));
    Outcome {
        name,
        failures,
        console: Some(console),
    }
}

/// The reasons `console` fails to show each of `markers` (marker, what it shows) on a line
/// after the previous one's: empty if they all appear, in this order. Stops at the first
/// missing one, as the rest would only repeat it.
pub fn in_order(console: &Capture, markers: &[(&str, &str)]) -> Vec<String> {
    let mut from = 0;
    for (marker, what) in markers {
        match console.lines[from..]
            .iter()
            .position(|l| l.text.contains(marker))
        {
            Some(i) => from += i + 1,
            None if console.find(marker).is_some() => {
                return vec![format!(
                    "no `{marker}` line ({what}) after the previous marker's: it is only \
                     earlier (out of order, or not repeated)"
                )]
            }
            None => return vec![format!("no `{marker}` line ({what})")],
        }
    }
    Vec::new()
}

/// The lines strictly between the first line containing `begin` and the next containing `end`.
pub fn section<'a>(console: &'a Capture, begin: &str, end: &str) -> Option<Vec<&'a str>> {
    let mut lines = console.lines.iter().skip_while(|l| !l.text.contains(begin));
    lines.next()?;
    let mut out = Vec::new();
    for l in lines {
        if l.text.contains(end) {
            return Some(out);
        }
        out.push(l.text.as_str());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_must_come_in_order() {
        let c = Capture::from_text("a 1\nb 2\nc 3\n");
        assert!(in_order(&c, &[("a", "A"), ("c", "C")]).is_empty());
        assert!(in_order(&c, &[("c", "C"), ("a", "A")])[0].contains("only earlier"));
        assert!(in_order(&c, &[("a", "A"), ("d", "D")])[0].contains("no `d` line (D)"));
        // One line cannot stand for two markers.
        assert!(!in_order(&c, &[("b", "B"), ("b", "B again")]).is_empty());
    }

    /// `--only` and the logs go by name: two scenario files must not define the same one.
    #[test]
    fn scenario_names_are_unique() {
        let names: Vec<String> = all().iter().map(|s| s.name()).collect();
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len(), "{names:?}");
    }
}
