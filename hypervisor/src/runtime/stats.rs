//! Exit counters by reason (like kvm_stat or `bhyvectl --get-stats`): machine-wide ones for
//! the benchmarks, and one set per vCPU for the monitor. Relaxed atomics: a counter costs one
//! uncontended add on the exit path.

use core::sync::atomic::{AtomicU64, Ordering};

/// What is counted.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub enum Counter {
    /// Data aborts on emulated devices (MMIO).
    Mmio,
    /// HVC/SMC calls.
    Hvc,
    /// Trapped system registers.
    SysReg,
    /// Trapped WFI (and WFE, where trapped).
    Wfi,
    /// IRQ exits.
    Irq,
    /// Timer interrupts handed to a guest.
    TimerInjected,
    /// Kicks sent to another CPU.
    KickSent,
    /// Other exits.
    Other,
}

/// Number of counters.
pub const NR_COUNTERS: usize = 8;

/// The counters' names, in [`Counter`] order.
pub const NAMES: [&str; NR_COUNTERS] = [
    "mmio", "hvc", "sysreg", "wfi", "irq", "timer", "kick", "other",
];

static COUNTS: [AtomicU64; NR_COUNTERS] = [const { AtomicU64::new(0) }; NR_COUNTERS];

/// Counts one machine-wide event.
#[inline]
pub fn count(c: Counter) {
    COUNTS[c as usize].fetch_add(1, Ordering::Relaxed);
}

/// One vCPU's counters; only its own physical CPU adds to them.
#[derive(Default)]
pub struct VcpuStats([AtomicU64; NR_COUNTERS]);

impl VcpuStats {
    /// Counts one event, here and machine-wide.
    #[inline]
    pub fn count(&self, c: Counter) {
        self.0[c as usize].fetch_add(1, Ordering::Relaxed);
        count(c);
    }

    /// Adds these counters to `sum`.
    pub fn add_to(&self, sum: &mut [u64; NR_COUNTERS]) {
        for (s, c) in sum.iter_mut().zip(self.0.iter()) {
            *s += c.load(Ordering::Relaxed);
        }
    }
}

/// Prints the machine-wide counters on one line.
pub fn print() {
    let mut line = [0u64; NR_COUNTERS];
    for (v, c) in line.iter_mut().zip(COUNTS.iter()) {
        *v = c.load(Ordering::Relaxed);
    }
    log::info!("exits: {}", Line(&line));
}

/// Counters as `name value` pairs on one line.
pub struct Line<'a>(pub &'a [u64; NR_COUNTERS]);

impl core::fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, (n, v)) in NAMES.iter().zip(self.0.iter()).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{n} {v}")?;
        }
        Ok(())
    }
}
