//! The scheduler's decisions, as plain logic over what it knows of each vCPU placed on one
//! physical CPU: which runs next (round robin over the runnable ones), whether the running one
//! gives the CPU up, and when the EL2 timer must fire. The image reads the vCPUs' shared state
//! into [`VcpuView`]s and carries the decisions out (see the runtime's `sched`).

use crate::arch::regs::CNT_CTL;
use tock_registers::LocalRegisterCopy;

/// A vCPU's power state as PSCI sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Power {
    /// Not running; CPU_ON may start it.
    Off = 0,
    /// CPU_ON accepted; its physical CPU has not picked it up yet.
    OnPending = 1,
    /// Running.
    On = 2,
}

/// What the scheduler knows of one vCPU at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuView {
    /// Its VM is running (not stopped, not being reset).
    pub alive: bool,
    /// Its power state.
    pub power: Power,
    /// The VMM paused it.
    pub paused: bool,
    /// It waits for an interrupt.
    pub blocked: bool,
    /// The physical counter value at which its own timer fires (u64::MAX: never).
    pub deadline: u64,
    /// An interrupt is pending for it.
    pub irq_pending: bool,
}

impl VcpuView {
    /// Whether it can run at physical counter value `now`.
    pub fn runnable(&self, now: u64) -> bool {
        if !self.alive || self.paused {
            return false;
        }
        match self.power {
            Power::Off => false,
            Power::OnPending => true,
            Power::On => !self.blocked || now >= self.deadline || self.irq_pending,
        }
    }
}

/// The round robin of one CPU's vCPUs.
#[derive(Clone, Copy, Debug, Default)]
pub struct RoundRobin {
    /// Where the next choice starts looking.
    next: usize,
}

impl RoundRobin {
    /// A round robin that starts with the first vCPU.
    pub const fn new() -> Self {
        Self { next: 0 }
    }

    /// The next of `n` vCPUs to run: the first runnable one from where the last choice left
    /// off. `runnable` is asked of every vCPU once, whatever is chosen, since asking may
    /// settle a vCPU's state (one whose VM stopped is turned off by its own CPU).
    pub fn pick(&mut self, n: usize, mut runnable: impl FnMut(usize) -> bool) -> Option<usize> {
        let mut found = None;
        for step in 0..n {
            let k = (self.next + step) % n;
            if runnable(k) && found.is_none() {
                found = Some(k);
            }
        }
        let k = found?;
        self.next = (k + 1) % n;
        Some(k)
    }
}

/// Whether a vCPU other than `cur` (an index into `views`) can run now.
pub fn others_runnable(views: impl Iterator<Item = VcpuView>, cur: usize, now: u64) -> bool {
    views.enumerate().any(|(k, v)| k != cur && v.runnable(now))
}

/// Whether the running vCPU (`cur`, an index into `views`) should give the CPU up when told to
/// look: another can run while `cur`'s slice is over, or another that waited for an interrupt
/// has one now (it runs at once, as an interactive task would). The views are taken lazily,
/// up to the first that decides.
pub fn should_preempt(
    views: impl Iterator<Item = VcpuView>,
    cur: usize,
    slice_over: bool,
    now: u64,
) -> bool {
    views
        .enumerate()
        .any(|(k, v)| k != cur && (slice_over || v.blocked) && v.runnable(now))
}

/// When the EL2 timer must fire (None: it need not): the end of the running vCPU's slice
/// (`cur`, `slice_end`) when another vCPU waits for the CPU, and the earliest timer deadline of
/// a vCPU blocked off the CPU. `irq_pending` is not looked at.
pub fn wake_at(
    views: impl Iterator<Item = VcpuView>,
    cur: Option<usize>,
    slice_end: u64,
    now: u64,
) -> Option<u64> {
    let mut at = u64::MAX;
    for (k, v) in views.enumerate() {
        if Some(k) == cur || !v.alive || v.power == Power::Off {
            continue;
        }
        if v.blocked {
            at = at.min(v.deadline);
        } else if cur.is_some() {
            at = at.min(slice_end.max(now));
        }
    }
    (at != u64::MAX).then_some(at)
}

/// The physical counter value at which a timer with control `ctl` and compare value `cval`
/// (offset by `offset` from the physical counter) fires, if it is armed (u64::MAX: never).
pub fn timer_deadline(ctl: u64, cval: u64, offset: u64) -> u64 {
    let ctl = LocalRegisterCopy::<u64, CNT_CTL::Register>::new(ctl);
    if ctl.is_set(CNT_CTL::ENABLE) && !ctl.is_set(CNT_CTL::IMASK) {
        cval.saturating_add(offset)
    } else {
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: VcpuView = VcpuView {
        alive: true,
        power: Power::On,
        paused: false,
        blocked: false,
        deadline: u64::MAX,
        irq_pending: false,
    };
    const WAITING: VcpuView = VcpuView {
        blocked: true,
        ..RUNNING
    };

    #[test]
    fn who_can_run() {
        assert!(RUNNING.runnable(0));
        assert!(!WAITING.runnable(100));
        assert!(VcpuView {
            deadline: 100,
            ..WAITING
        }
        .runnable(100));
        assert!(VcpuView {
            irq_pending: true,
            ..WAITING
        }
        .runnable(0));
        assert!(VcpuView {
            power: Power::OnPending,
            ..WAITING
        }
        .runnable(0));
        for not in [
            VcpuView {
                alive: false,
                ..RUNNING
            },
            VcpuView {
                paused: true,
                ..RUNNING
            },
            VcpuView {
                power: Power::Off,
                ..RUNNING
            },
        ] {
            assert!(!not.runnable(0), "{not:?}");
        }
    }

    #[test]
    fn round_robin_takes_turns_and_skips_who_cannot_run() {
        let mut rr = RoundRobin::new();
        let can = [true, false, true, true];
        let picks: std::vec::Vec<_> = (0..6).map(|_| rr.pick(4, |k| can[k]).unwrap()).collect();
        assert_eq!(picks, [0, 2, 3, 0, 2, 3]);
        assert_eq!(rr.pick(4, |_| false), None);
        assert_eq!(rr.pick(0, |_| true), None);
    }

    #[test]
    fn round_robin_asks_every_vcpu_each_time() {
        let mut rr = RoundRobin::new();
        let mut asked = [0; 3];
        rr.pick(3, |k| {
            asked[k] += 1;
            true
        });
        assert_eq!(asked, [1, 1, 1]);
    }

    #[test]
    fn preemption_needs_another_runnable_vcpu() {
        let views = [RUNNING, RUNNING];
        assert!(should_preempt(views.into_iter(), 0, true, 0));
        // The slice is not over and nobody was woken.
        assert!(!should_preempt(views.into_iter(), 0, false, 0));
        // A woken vCPU takes the CPU before the slice ends.
        let woken = VcpuView {
            irq_pending: true,
            ..WAITING
        };
        assert!(should_preempt([RUNNING, woken].into_iter(), 0, false, 0));
        // Alone, or with only waiting ones: never.
        assert!(!should_preempt([RUNNING].into_iter(), 0, true, 0));
        assert!(!should_preempt([RUNNING, WAITING].into_iter(), 0, true, 0));
    }

    #[test]
    fn another_runnable_vcpu() {
        assert!(others_runnable([WAITING, RUNNING].into_iter(), 0, 0));
        assert!(!others_runnable([RUNNING, WAITING].into_iter(), 0, 0));
        assert!(!others_runnable([RUNNING].into_iter(), 0, 0));
    }

    #[test]
    fn the_el2_timer_watches_slices_and_deadlines() {
        // Another vCPU waits for the CPU: the slice's end.
        assert_eq!(
            wake_at([RUNNING, RUNNING].into_iter(), Some(0), 500, 100),
            Some(500)
        );
        // A slice already over: now.
        assert_eq!(
            wake_at([RUNNING, RUNNING].into_iter(), Some(0), 50, 100),
            Some(100)
        );
        // A blocked vCPU's own timer.
        let sleeper = VcpuView {
            deadline: 300,
            ..WAITING
        };
        assert_eq!(
            wake_at([RUNNING, sleeper].into_iter(), Some(0), 500, 100),
            Some(300)
        );
        // Idle CPU: only deadlines count.
        assert_eq!(
            wake_at([sleeper, RUNNING].into_iter(), None, 500, 100),
            Some(300)
        );
        // Nothing to watch.
        assert_eq!(wake_at([RUNNING].into_iter(), Some(0), 500, 100), None);
        let off = VcpuView {
            power: Power::Off,
            ..sleeper
        };
        assert_eq!(wake_at([RUNNING, off].into_iter(), Some(0), 500, 100), None);
    }

    #[test]
    fn timer_deadlines() {
        let on = CNT_CTL::ENABLE::SET.value;
        let masked = (CNT_CTL::ENABLE::SET + CNT_CTL::IMASK::SET).value;
        assert_eq!(timer_deadline(on, 1000, 5), 1005);
        assert_eq!(timer_deadline(on, u64::MAX, 5), u64::MAX);
        assert_eq!(timer_deadline(masked, 1000, 5), u64::MAX);
        assert_eq!(timer_deadline(0, 1000, 5), u64::MAX);
    }
}
