//! The architecture interface in plain Rust, for host tests: each test thread has a register
//! file ([`Cpu`]) that the interface's functions read and write, and that the test sets up and
//! inspects with [`with_cpu`].

extern crate std;

use crate::arch::{GuestControls, Syndrome};
use crate::inject::El1Entry;
use alloc::vec::Vec;
use core::cell::RefCell;

/// Most list registers a GICv3 CPU interface has.
pub const MAX_LRS: usize = 16;

/// The registers the interface touches, as a test sees them.
#[derive(Clone, Debug, Default)]
pub struct Cpu {
    /// The physical count.
    pub count: u64,
    /// Counter ticks per second.
    pub frequency: u64,
    /// The EL2 timer's deadline, if armed.
    pub hyp_deadline: Option<u64>,
    /// CNTV_CTL_EL0 and CNTP_CTL_EL0.
    pub guest_timer_ctl: (u64, u64),
    /// Stage-1/2 flushes of the current VMID on this CPU.
    pub guest_tlb_flushes: u32,
    /// The syndrome of the last exception to EL2.
    pub syndrome: Syndrome,
    /// What the guest's stage 1 maps (virtual page -> guest-physical page), for
    /// `trap::translate_far`.
    pub stage1: Vec<(u64, u64)>,
    /// ELR_EL2.
    pub elr_el2: u64,
    /// How many list registers exist.
    pub nr_lrs: usize,
    /// ICH_LR<n>_EL2.
    pub lrs: [u64; MAX_LRS],
    /// ICH_EISR_EL2.
    pub eoi_lrs: u64,
    /// ICH_HCR_EL2.
    pub ich_hcr: u64,
    /// ICH_VMCR_EL2.
    pub ich_vmcr: u64,
    /// HCR_EL2.VI.
    pub virtual_irq: bool,
    /// ICH_AP0R0, ICH_AP1R0, ICH_VMCR were cleared since the test cleared this.
    pub cpuif_reset: bool,
    /// SCTLR_EL1 (the other EL1 registers a reset clears are not modelled).
    pub sctlr_el1: u64,
    /// VBAR_EL1.
    pub vbar_el1: u64,
    /// The last exception delivered into the guest.
    pub delivered: Option<El1Entry>,
    /// The EL2 controls loaded last.
    pub controls: GuestControls,
    /// ID registers by (CRm, op2) of `S3_0_C0_C<crm>_<op2>`.
    pub id: [[u64; 8]; 8],
}

std::thread_local! {
    static CPU: RefCell<Cpu> = RefCell::new(Cpu {
        frequency: 62_500_000,
        nr_lrs: 4,
        ..Cpu::default()
    });
}

/// Runs `f` on this thread's fake CPU.
pub fn with_cpu<R>(f: impl FnOnce(&mut Cpu) -> R) -> R {
    CPU.with(|c| f(&mut c.borrow_mut()))
}

/// See `arch/aarch64/timer.rs`.
pub mod timer {
    use super::with_cpu;

    /// The physical count.
    pub fn now() -> u64 {
        with_cpu(|c| c.count)
    }

    /// Counter ticks per second.
    pub fn frequency() -> u64 {
        with_cpu(|c| c.frequency)
    }

    /// Arms or stops the EL2 timer.
    pub fn set_hyp_deadline(at: Option<u64>) {
        with_cpu(|c| c.hyp_deadline = at);
    }

    /// Turns the guest timers off.
    pub fn silence_guest_timers() {
        with_cpu(|c| c.guest_timer_ctl = (0, 0));
    }
}

/// See `arch/aarch64/tlb.rs`.
pub mod tlb {
    /// Counts a flush of the current VMID's entries.
    pub fn flush_guest_local() {
        super::with_cpu(|c| c.guest_tlb_flushes += 1);
    }

    /// Counts a broadcast flush of the current VMID's entries.
    pub fn flush_guest_all() {
        super::with_cpu(|c| c.guest_tlb_flushes += 1);
    }
}

/// See `arch/aarch64/trap.rs`.
pub mod trap {
    pub use crate::arch::Syndrome;

    /// The syndrome the test set.
    pub fn syndrome() -> Syndrome {
        super::with_cpu(|c| c.syndrome)
    }

    /// ELR_EL2.
    pub fn return_address() -> u64 {
        super::with_cpu(|c| c.elr_el2)
    }

    /// `far` through the test's stage 1 (`Cpu::stage1`); reads and writes alike.
    pub fn translate_far(far: u64, _write: bool) -> Option<u64> {
        super::with_cpu(|c| {
            c.stage1
                .iter()
                .find(|(va, _)| *va == far & !0xfff)
                .map(|(_, ipa)| ipa | (far & 0xfff))
        })
    }
}

/// See `arch/aarch64/cpuif.rs`.
pub mod cpuif {
    use super::with_cpu;
    use crate::arch::regs::ICH_HCR;

    /// How many list registers exist.
    pub fn list_registers() -> usize {
        with_cpu(|c| c.nr_lrs)
    }

    /// ICH_LR<n>_EL2.
    pub fn read_lr(n: usize) -> u64 {
        with_cpu(|c| if n < c.nr_lrs { c.lrs[n] } else { 0 })
    }

    /// Writes ICH_LR<n>_EL2.
    pub fn write_lr(n: usize, value: u64) {
        with_cpu(|c| {
            if n < c.nr_lrs {
                c.lrs[n] = value;
            }
        });
    }

    /// ICH_ELRSR_EL2, computed from the list registers as the hardware does: a register is
    /// empty when its State field (bits 63:62) is 0.
    pub fn empty_lrs() -> u64 {
        with_cpu(|c| {
            (0..c.nr_lrs)
                .filter(|&n| c.lrs[n] >> 62 == 0)
                .fold(0, |m, n| m | 1 << n)
        })
    }

    /// ICH_EISR_EL2, as the test set it.
    pub fn eoi_lrs() -> u64 {
        with_cpu(|c| c.eoi_lrs)
    }

    /// Writes ICH_HCR_EL2.
    pub fn set_control(hcr: u64) {
        with_cpu(|c| c.ich_hcr = hcr);
    }

    /// ICH_HCR_EL2.
    pub fn control() -> u64 {
        with_cpu(|c| c.ich_hcr)
    }

    /// ICH_VMCR_EL2, as the test set it.
    pub fn machine_control() -> u64 {
        with_cpu(|c| c.ich_vmcr)
    }

    /// Clears the active priorities and VMCR; the interface on, no maintenance interrupts.
    pub fn reset_state() {
        with_cpu(|c| {
            c.cpuif_reset = true;
            c.ich_hcr = ICH_HCR::EN::SET.value;
        });
    }
}

/// See `arch/aarch64/el1.rs`.
pub mod el1 {
    use super::with_cpu;
    use crate::inject::El1Entry;

    /// Resets the EL1 state for a boot with SCTLR_EL1 `sctlr`.
    pub fn reset_for_boot(sctlr: u64) {
        with_cpu(|c| {
            c.sctlr_el1 = sctlr;
            c.vbar_el1 = 0;
            c.guest_timer_ctl = (0, 0);
        });
    }

    /// VBAR_EL1.
    pub fn vector_base() -> u64 {
        with_cpu(|c| c.vbar_el1)
    }

    /// Records the delivered exception.
    pub fn deliver(e: &El1Entry) {
        let e = *e;
        with_cpu(|c| c.delivered = Some(e));
    }
}

/// See `arch/aarch64/el2.rs`.
pub mod el2 {
    pub use crate::arch::GuestControls;

    /// Records the controls loaded.
    pub fn load_guest_controls(g: &GuestControls) {
        let g = *g;
        super::with_cpu(|c| c.controls = g);
    }

    /// Records HCR_EL2.VI.
    pub fn set_virtual_irq(on: bool) {
        super::with_cpu(|c| c.virtual_irq = on);
    }
}

/// See `arch/aarch64/id.rs`.
pub mod id {
    /// `S3_0_C0_C<crm>_<op2>` as the test set it (0 outside CRm 1..=7).
    pub fn read(crm: u8, op2: u8) -> u64 {
        super::with_cpu(|c| match (crm, op2) {
            (1..=7, 0..=7) => c.id[usize::from(crm)][usize::from(op2)],
            _ => 0,
        })
    }
}
