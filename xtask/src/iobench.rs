//! The I/O part of `cargo xtask bench`: sequential throughput of the guest's virtio-blk (dd
//! write with a final flush, then read with a cold cache) and of its virtio-net (a 4 MiB
//! POST to a sink on the host), under rhyve and with the same image and network attached to
//! the same kernel booted straight by QEMU, which then drives QEMU's devices itself.
//!
//! Figures only, as for the boot time.

use std::fs;
use std::time::Duration;

use crate::boot::{GuestBoot, Host};
use crate::devices::disk_args;
use crate::error::{Error, IoContext, Result};
use crate::guest::GuestFiles;
use crate::qemu::{self, Capture, Stop};
use crate::scenarios::RHYVE_PANIC;
use crate::sink::Sink;
use crate::sys;

const VCPUS: u32 = 2;
const MEM_MIB: u64 = 512;
const DISK_MIB: u64 = 64;
const TIMEOUT: Duration = Duration::from_secs(600);

/// One measured transfer.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// `blk-write`, `blk-read`, `net-send`.
    pub what: String,
    /// Bytes moved.
    pub bytes: u64,
    /// Seconds, as the guest's clock saw them.
    pub seconds: f64,
}

impl Figure {
    /// MiB/s.
    pub fn rate(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / self.seconds.max(0.01)
    }
}

/// The figures in a console: lines `RHYVE-IOBENCH what bytes start end`.
pub fn parse(console: &Capture) -> Vec<Figure> {
    console
        .lines
        .iter()
        .filter_map(|l| {
            let rest = l.text.split_once("RHYVE-IOBENCH ")?.1;
            let w: Vec<&str> = rest.split_whitespace().collect();
            let [what, bytes, t0, t1] = w[..] else {
                return None;
            };
            let (t0, t1): (f64, f64) = (t0.parse().ok()?, t1.parse().ok()?);
            Some(Figure {
                what: what.to_string(),
                bytes: bytes.parse().ok()?,
                seconds: t1 - t0,
            })
        })
        .collect()
}

/// One boot of the I/O guest on `host`; its figures.
fn run_once(host: &Host, name: &str, guest: &GuestFiles) -> Result<Vec<Figure>> {
    let build = sys::build_dir();
    let disk = build.join("disks/bench.img");
    if let Some(dir) = disk.parent() {
        fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    fs::File::create(&disk)
        .and_then(|f| f.set_len(DISK_MIB << 20))
        .ctx(|| format!("creating {}", disk.display()))?;
    let sink = Sink::start().ctx(|| "starting the host sink".into())?;
    let boot = GuestBoot::linux(
        guest,
        format!("console=ttyAMA0 rhyve.iobench={}", sink.port),
        VCPUS,
        MEM_MIB,
    );
    let mut machine = boot.machine(host, &build.join("bundles/iobench.bin"))?;
    machine.smp = VCPUS;
    machine
        .extra
        .extend(disk_args(&disk, false).into_iter().map(Into::into));
    machine
        .extra
        .extend(crate::devices::net_args().into_iter().map(Into::into));
    let log = build.join(format!("logs/bench-io-{name}.log"));
    let stops = [Stop {
        marker: RHYVE_PANIC,
        grace: Duration::from_secs(2),
    }];
    let console = qemu::run_captured(&machine, &log, TIMEOUT, &stops, &[])?;
    let figures = parse(&console);
    if figures.is_empty() {
        return Err(Error::Failed(format!(
            "the I/O guest printed no figures: {} (log: {})",
            console.end,
            log.display()
        )));
    }
    if let Some(Ok(r)) = sink.wait(Duration::from_secs(2)) {
        println!(
            "  {name:<8} net-send as the host received it: {} bytes in {:.2} s",
            r.body.len(),
            r.elapsed.as_secs_f64()
        );
    }
    Ok(figures)
}

/// Runs the I/O guest straight, then under rhyve (if `image`), and prints the figures.
pub fn bench(image: Option<&std::path::Path>, guest: &GuestFiles) -> Result<()> {
    println!(
        "xtask: bench: I/O, {VCPUS} vCPUs: dd of 32 MiB on virtio-blk (write + flush, cold read), \
         4 MiB POST on virtio-net; guest clock"
    );
    let mut hosts = vec![("straight", Host::Straight)];
    if let Some(i) = image {
        hosts.push((
            "rhyve",
            Host::Rhyve {
                image: i.to_path_buf(),
            },
        ));
    }
    let mut all = Vec::new();
    for (name, host) in &hosts {
        let figures = run_once(host, name, guest)?;
        for f in &figures {
            println!(
                "  {name:<8} {:<10} {:>9} bytes {:7.2} s {:8.2} MiB/s",
                f.what,
                f.bytes,
                f.seconds,
                f.rate()
            );
        }
        all.push(figures);
    }
    if let [straight, rhyve] = &all[..] {
        for s in straight {
            if let Some(r) = rhyve.iter().find(|r| r.what == s.what) {
                println!(
                    "  rhyve/straight {:<10} {:.2}x throughput",
                    s.what,
                    r.rate() / s.rate()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::qemu::{End, Line};

    #[test]
    fn figures_parse_from_the_console() {
        let line = |t: &str| Line {
            at: Duration::ZERO,
            text: t.into(),
        };
        let c = Capture {
            lines: vec![
                line("RHYVE-IOBENCH blk-write 33554432 5.10 7.10"),
                line("noise RHYVE-IOBENCH net-send 100 1.00 1.50"),
                line("RHYVE-IOBENCH broken"),
            ],
            end: End::Stopped("x".into()),
            log: "x".into(),
        };
        let f = parse(&c);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].what, "blk-write");
        assert!((f[0].rate() - 16.0).abs() < 1e-9);
        assert!((f[1].seconds - 0.5).abs() < 1e-9);
    }
}
