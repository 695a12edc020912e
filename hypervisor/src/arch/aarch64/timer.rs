//! The generic timer as the core uses it: the physical count, its frequency, the EL2 timer
//! that preempts a vCPU, and the guest timers silenced when no vCPU owns them.

use crate::arch::regs::{read_sysreg, write_sysreg, CNT_CTL};
use core::sync::atomic::{AtomicU64, Ordering};

/// The counter's frequency from the device tree's timer node, for firmware that left
/// CNTFRQ_EL0 at 0 (which only EL3 may write).
static TREE_FREQUENCY: AtomicU64 = AtomicU64::new(0);

/// The physical count (CNTPCT_EL0).
#[inline]
pub fn now() -> u64 {
    read_sysreg!("cntpct_el0")
}

/// Counter ticks per second: CNTFRQ_EL0, else the device tree's (0 if neither says).
#[inline]
pub fn frequency() -> u64 {
    match read_sysreg!("cntfrq_el0") {
        0 => TREE_FREQUENCY.load(Ordering::Relaxed),
        f => f,
    }
}

/// Sets the frequency [`frequency`] gives when CNTFRQ_EL0 reads 0 (once, at boot).
pub fn set_tree_frequency(f: u64) {
    TREE_FREQUENCY.store(f, Ordering::Relaxed);
}

/// Arms the EL2 physical timer to fire at physical count `at`, or turns it off.
#[inline]
pub fn set_hyp_deadline(at: Option<u64>) {
    match at {
        Some(at) => {
            write_sysreg!("cnthp_cval_el2", at);
            write_sysreg!("cnthp_ctl_el2", CNT_CTL::ENABLE::SET.value);
        }
        None => write_sysreg!("cnthp_ctl_el2", 0),
    }
}

/// Turns the EL1 virtual and physical timers off (a vCPU stopped, or nobody to take them).
#[inline]
pub fn silence_guest_timers() {
    write_sysreg!("cntv_ctl_el0", 0);
    write_sysreg!("cntp_ctl_el0", 0);
}
