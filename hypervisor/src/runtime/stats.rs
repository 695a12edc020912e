//! Exit counters by reason, for the monitor and the benchmarks (like kvm_stat). Relaxed
//! atomics: a counter costs one uncontended add on the exit path.

use core::sync::atomic::{AtomicU64, Ordering};

/// What is counted.
#[derive(Clone, Copy, Debug)]
#[repr(usize)]
pub enum Counter {
    /// Emulated MMIO accesses.
    Mmio,
    /// HVC/SMC calls.
    Hvc,
    /// Trapped system registers.
    SysReg,
    /// Trapped WFI.
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

const NAMES: [&str; 8] = [
    "mmio", "hvc", "sysreg", "wfi", "irq", "timer", "kick", "other",
];

static COUNTS: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Counts one event.
#[inline]
pub fn count(c: Counter) {
    COUNTS[c as usize].fetch_add(1, Ordering::Relaxed);
}

/// Prints every counter on one line.
pub fn print() {
    let mut line = [0u64; 8];
    for (v, c) in line.iter_mut().zip(COUNTS.iter()) {
        *v = c.load(Ordering::Relaxed);
    }
    log::info!(
        "exits: {} {} {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
        NAMES[0],
        line[0],
        NAMES[1],
        line[1],
        NAMES[2],
        line[2],
        NAMES[3],
        line[3],
        NAMES[4],
        line[4],
        NAMES[5],
        line[5],
        NAMES[6],
        line[6],
        NAMES[7],
        line[7]
    );
}
