//! `cargo xtask bench`: boot time of the test guest under rhyve against QEMU booting it
//! straight, from QEMU's spawn to the guest init's first line (`RHYVE-INIT-START`).
//!
//! It prints figures only: under TCG wall-clock time says little about pass or fail.

use std::time::Duration;

use crate::boot::{GuestBoot, Host};
use crate::error::{Error, Result};
use crate::guest::GuestFiles;
use crate::qemu::{self, Stop};
use crate::scenarios::RHYVE_PANIC;
use crate::sys;

/// The marker the clock stops at.
const MARKER: &str = "RHYVE-INIT-START";
const CMDLINE: &str = "console=ttyAMA0 rhyve.bench=1";
const VCPUS: u32 = 2;
const MEM_MIB: u64 = 512;
const TIMEOUT: Duration = Duration::from_secs(600);

/// One series of boots: straight or under rhyve.
struct Series {
    name: &'static str,
    host: Host,
    times: Vec<Duration>,
    failed: u32,
}

/// One boot; the time to the marker, or why there is none.
fn boot_once(series: &Series, guest: &GuestFiles, run: u32) -> Result<Duration, String> {
    let boot = GuestBoot::linux(guest, CMDLINE, VCPUS, MEM_MIB);
    let build = sys::build_dir();
    let mut machine = boot
        .machine(&series.host, &build.join("bundles/bench.bin"))
        .map_err(|e| e.to_string())?;
    // Both series get as many host CPUs as the guest has vCPUs: idle extra CPUs are not free
    // under TCG on a small host, and the comparison is of the hypervisor, not of -smp.
    machine.smp = VCPUS;
    let log = build.join(format!("logs/bench-{}-{run}.log", series.name));
    let stops = [
        // Stop the clock, and QEMU, at the marker: what follows is the guest powering off.
        Stop {
            marker: MARKER,
            grace: Duration::ZERO,
        },
        Stop {
            marker: RHYVE_PANIC,
            grace: Duration::from_secs(2),
        },
    ];
    let console =
        qemu::run_captured(&machine, &log, TIMEOUT, &stops, &[]).map_err(|e| e.to_string())?;
    match console.find(MARKER) {
        Some(l) if console.find(RHYVE_PANIC).is_none() => Ok(l.at),
        _ => Err(format!(
            "no {MARKER}: {} (log: {})",
            console.end,
            log.display()
        )),
    }
}

/// (min, median) of `v`; the median of an even count is the mean of the middle two.
fn min_median(v: &[Duration]) -> Option<(Duration, Duration)> {
    let mut s = v.to_vec();
    s.sort();
    let n = s.len();
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => s[n / 2],
        _ => (s[n / 2 - 1] + s[n / 2]) / 2,
    };
    Some((s[0], median))
}

/// Runs the benchmark: `runs` boots of each series, interleaved so drift in the host's load
/// hits both alike. Without `image`, only the straight series runs.
pub fn bench(runs: u32, image: Option<std::path::PathBuf>, guest: &GuestFiles) -> Result<()> {
    let mut series = vec![Series {
        name: "straight",
        host: Host::Straight,
        times: vec![],
        failed: 0,
    }];
    if let Some(image) = image {
        series.push(Series {
            name: "rhyve",
            host: Host::Rhyve { image },
            times: vec![],
            failed: 0,
        });
    }
    println!("xtask: bench: {runs} boot(s) each, {VCPUS} vCPUs, {MEM_MIB} MiB, `{CMDLINE}`; time from QEMU spawn to {MARKER}");
    for run in 1..=runs {
        for s in &mut series {
            match boot_once(s, guest, run) {
                Ok(t) => {
                    println!("  run {run} {:<8} {:8.3} s", s.name, t.as_secs_f64());
                    s.times.push(t);
                }
                Err(why) => {
                    println!("  run {run} {:<8} FAILED: {why}", s.name);
                    s.failed += 1;
                }
            }
        }
    }
    let mut stats = Vec::new();
    for s in &series {
        match min_median(&s.times) {
            Some((min, med)) => {
                println!(
                    "{:<8} min {:8.3} s  median {:8.3} s  ({} runs)",
                    s.name,
                    min.as_secs_f64(),
                    med.as_secs_f64(),
                    s.times.len()
                );
                stats.push((min, med));
            }
            None => println!("{:<8} no successful run", s.name),
        }
    }
    if let [(smin, smed), (rmin, rmed)] = stats[..] {
        println!(
            "rhyve/straight  min {:.2}x  median {:.2}x",
            rmin.as_secs_f64() / smin.as_secs_f64(),
            rmed.as_secs_f64() / smed.as_secs_f64()
        );
    }
    let failed: u32 = series.iter().map(|s| s.failed).sum();
    let image = series.iter().find_map(|s| match &s.host {
        Host::Rhyve { image } => Some(image.clone()),
        Host::Straight => None,
    });
    if let Some(image) = &image {
        exit_round_trips(image)?;
    }
    crate::iobench::bench(image.as_deref(), guest)?;
    if failed > 0 {
        return Err(Error::Failed(format!(
            "{failed} boot(s) never reached {MARKER}; see build/logs/bench-*.log"
        )));
    }
    Ok(())
}

/// Boots the `exitbench` test guest under rhyve once and prints what it measured: the round
/// trip of one exit per path (null, core device, VMM device by upcall, VMM fast path), in
/// guest counter ticks and nanoseconds.
fn exit_round_trips(image: &std::path::Path) -> Result<()> {
    crate::toolchain::build_test_guests()?;
    let boot = GuestBoot {
        kernel: crate::toolchain::test_guest_bin("exitbench"),
        initrd: None,
        cmdline: String::new(),
        vcpus: 1,
        mem_mib: 32,
    };
    let build = sys::build_dir();
    let machine = boot.machine(
        &Host::Rhyve {
            image: image.to_path_buf(),
        },
        &build.join("bundles/exitbench.bin"),
    )?;
    let log = build.join("logs/bench-exitbench.log");
    let console = qemu::run_captured(&machine, &log, TIMEOUT, &[], &[])?;
    println!("exit round trip, as the guest sees it (one exit each, mean of 2000):");
    let mut seen = 0;
    for l in console
        .lines
        .iter()
        .filter(|l| l.text.starts_with("RHYVE-BENCH "))
    {
        println!("  {}", &l.text["RHYVE-BENCH ".len()..]);
        seen += 1;
    }
    if seen == 0 {
        return Err(Error::Failed(format!(
            "exitbench printed no figures; see {}",
            log.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_and_median() {
        let s = |v: &[u64]| {
            v.iter()
                .map(|&x| Duration::from_secs(x))
                .collect::<Vec<_>>()
        };
        assert_eq!(min_median(&[]), None);
        assert_eq!(
            min_median(&s(&[5, 1, 3])),
            Some((Duration::from_secs(1), Duration::from_secs(3)))
        );
        assert_eq!(
            min_median(&s(&[4, 1, 3, 2])),
            Some((Duration::from_secs(1), Duration::from_millis(2500)))
        );
    }
}
