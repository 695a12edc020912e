//! The generic timer as the core uses it: the physical count, its frequency, the EL2 timer
//! that preempts a vCPU, and the guest timers silenced when no vCPU owns them.

use crate::arch::regs::{read_sysreg, write_sysreg, CNT_CTL};

/// The physical count (CNTPCT_EL0).
#[inline]
pub fn now() -> u64 {
    read_sysreg!("cntpct_el0")
}

/// Counter ticks per second (CNTFRQ_EL0).
#[inline]
pub fn frequency() -> u64 {
    read_sysreg!("cntfrq_el0")
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
