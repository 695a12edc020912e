//! `rtc`: Debian's kernel with the busybox test init (`rhyve.rtc=1`) reads its PL031 RTC,
//! sets the system time from it, then writes another time to the RTC and reads it back.
//!
//! Asserts that the guest found a PL031; that the RTC's time and the system time set from it
//! are the host's time within [`SLACK_SECS`] (the VMM's model runs from the machine's RTC,
//! which QEMU keeps at the host's time); and that after `hwclock -w` of 1234567890 the RTC
//! reads that, plus the few seconds it took (RTCLR sets the time, which runs on). Straight
//! under QEMU the same checks hold of QEMU's own PL031.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::{Capture, Line};

use super::Scenario;

/// The command line of the test guest.
const CMDLINE: &str = "console=ttyAMA0 rhyve.rtc=1";
/// Guest RAM.
const MEM_MIB: u64 = 256;
/// How far the guest's time may be from the host's, in seconds: whole-second clocks on both
/// sides, and a line reaches the host a little after the guest printed it (TCG is slow).
const SLACK_SECS: i64 = 10;
/// What the guest writes to its RTC.
const WRITTEN: i64 = 1_234_567_890;

/// The scenario.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![Box::new(Rtc {
        spawned: Mutex::new(None),
    })]
}

/// The RTC test.
struct Rtc {
    /// The host's time just before QEMU was spawned: a line's host time is this plus its
    /// arrival time.
    spawned: Mutex<Option<SystemTime>>,
}

impl Scenario for Rtc {
    fn name(&self) -> String {
        "rtc".into()
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, CMDLINE, 1, MEM_MIB)
    }

    fn prepare(&self) -> Result<(), String> {
        *self.spawned.lock().map_err(|e| e.to_string())? = Some(SystemTime::now());
        Ok(())
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let spawned = self.spawned.lock().ok().and_then(|s| *s);
        match spawned {
            Some(t) => check(console, t),
            None => vec!["the host's time at the start was not taken".into()],
        }
    }
}

/// The number after `marker` on its line (the `nth` word after it), and the line.
fn value<'a>(console: &'a Capture, marker: &str, nth: usize) -> Result<(i64, &'a Line), String> {
    let line = console
        .find(marker)
        .ok_or_else(|| format!("no `{marker}` line"))?;
    let word = line
        .text
        .split(marker)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().nth(nth))
        .ok_or_else(|| format!("`{}`: no value", line.text.trim()))?;
    let v = word
        .parse()
        .map_err(|_| format!("`{}`: `{word}` is not a number", line.text.trim()))?;
    Ok((v, line))
}

/// Seconds since the epoch of `t`.
fn epoch_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The checks, on the console of a run spawned at host time `spawned`.
fn check(console: &Capture, spawned: SystemTime) -> Vec<String> {
    let mut failures = Vec::new();
    if console.find("RHYVE-RTC-MISSING").is_some() {
        return vec!["the guest has no /dev/rtc0: no RTC was found".into()];
    }
    match console.find("RHYVE-RTC-NAME ") {
        Some(l) if l.text.contains("pl031") => {}
        Some(l) => failures.push(format!("rtc0 is not a PL031: `{}`", l.text.trim())),
        None => failures.push("no `RHYVE-RTC-NAME` line: the test init did not run".into()),
    }
    for (marker, what) in [
        ("RHYVE-RTC-READ ", "the RTC's time"),
        ("RHYVE-RTC-SYS ", "the system time set from the RTC"),
    ] {
        match value(console, marker, 0) {
            Ok((guest, line)) => {
                let host = epoch_secs(spawned + line.at);
                if (guest - host).abs() > SLACK_SECS {
                    failures.push(format!(
                        "{what} is {guest}, the host's was {host} ({:+} s; at most {SLACK_SECS} s apart)",
                        guest - host
                    ));
                }
            }
            Err(e) => failures.push(e),
        }
    }
    match (
        value(console, "RHYVE-RTC-WROTE ", 0),
        value(console, "RHYVE-RTC-WROTE ", 1),
    ) {
        (Ok((wrote, _)), Ok((read, _))) => {
            if wrote != WRITTEN || !(WRITTEN..=WRITTEN + SLACK_SECS).contains(&read) {
                failures.push(format!(
                    "wrote {wrote} to the RTC with hwclock -w, read back {read} (expected {WRITTEN} to {})",
                    WRITTEN + SLACK_SECS
                ));
            }
        }
        (Err(e), _) | (_, Err(e)) => failures.push(e),
    }
    if console.find("RHYVE-TEST-DONE").is_none() {
        failures.push("no `RHYVE-TEST-DONE` line: the test init did not finish".into());
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn console(read: i64, sys: i64, back: i64) -> Capture {
        Capture::from_text(&format!(
            "RHYVE-INIT-START\nRHYVE-RTC-NAME rtc-pl031 9010000.pl031\nRHYVE-RTC-READ {read}\n\
             RHYVE-RTC-SYS {sys}\nRHYVE-RTC-WROTE {WRITTEN} {back}\nRHYVE-TEST-DONE\n"
        ))
    }

    #[test]
    fn a_clock_at_the_host_s_time_passes_and_one_off_fails() {
        let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert!(check(&console(1_700_000_002, 1_700_000_003, WRITTEN + 1), t).is_empty());
        let off = check(&console(0, 1_700_000_000, WRITTEN), t);
        assert_eq!(off.len(), 1, "{off:?}");
        assert!(off[0].contains("the RTC's time is 0"), "{off:?}");
        let not_loaded = check(&console(1_700_000_000, 1_700_000_000, 1_700_000_001), t);
        assert_eq!(not_loaded.len(), 1, "{not_loaded:?}");
        assert!(check(&Capture::from_text("RHYVE-RTC-MISSING\n"), t)[0].contains("no /dev/rtc0"));
        assert!(check(&Capture::from_text(""), t).len() >= 4);
    }
}
