//! A vCPU's whole CPU state, for physical CPUs that time-share several vCPUs.
//!
//! A vCPU alone on its CPU keeps its EL1 system registers, FP/SIMD, timer and GIC CPU
//! interface state live in the CPU between exits; only when another vCPU takes the CPU does
//! that state move to memory. What moves: the EL1 system registers a Linux or FreeBSD kernel
//! uses, the pointer-authentication keys (when the CPU has them), FP/SIMD (Q0-Q31, FPCR,
//! FPSR), the EL1 virtual and physical timers, and the virtual CPU interface's VMCR and
//! active-priority registers. List registers are not here: the vGIC folds them back on every
//! exit and rewrites them on entry. SVE and SME are hidden from guests that time-share
//! (their state is not switched), see `runtime::vcpu`.

use crate::arch::regs::{read_sysreg, write_sysreg, ICH_VTR_PRE, ID_AA64ISAR1, ID_AA64ISAR2};
use tock_registers::LocalRegisterCopy;

/// EL1 (and EL0) system registers, in the order [`EL1_REGS`] names them.
const NR_EL1: usize = 28;

/// Pointer-authentication key registers (APIAKeyLo_EL1 .. APGAKeyHi_EL1), by encoding: the
/// assembler only knows their names with the pauth feature, which the core's target lacks.
const NR_KEYS: usize = 10;

/// Most active-priority registers per group (ICH_AP{0,1}R{0..3}_EL2).
const NR_APR: usize = 4;

/// The saved state of one vCPU while it is off its CPU.
#[derive(Clone, Debug)]
#[repr(C, align(16))]
pub struct CpuContext {
    /// Q0-Q31, two 64-bit halves each.
    fpregs: [u64; 64],
    fpcr: u64,
    fpsr: u64,
    el1: [u64; NR_EL1],
    keys: [u64; NR_KEYS],
    vmcr: u64,
    ap0r: [u64; NR_APR],
    ap1r: [u64; NR_APR],
}

impl Default for CpuContext {
    fn default() -> Self {
        Self {
            fpregs: [0; 64],
            fpcr: 0,
            fpsr: 0,
            el1: [0; NR_EL1],
            keys: [0; NR_KEYS],
            vmcr: 0,
            ap0r: [0; NR_APR],
            ap1r: [0; NR_APR],
        }
    }
}

/// Calls `$m!(index, "register")` for each switched EL1 register.
macro_rules! el1_regs {
    ($m:ident) => {
        $m!(0, "sctlr_el1");
        $m!(1, "cpacr_el1");
        $m!(2, "ttbr0_el1");
        $m!(3, "ttbr1_el1");
        $m!(4, "tcr_el1");
        $m!(5, "mair_el1");
        $m!(6, "amair_el1");
        $m!(7, "vbar_el1");
        $m!(8, "contextidr_el1");
        $m!(9, "tpidr_el1");
        $m!(10, "tpidr_el0");
        $m!(11, "tpidrro_el0");
        $m!(12, "sp_el0");
        $m!(13, "sp_el1");
        $m!(14, "elr_el1");
        $m!(15, "spsr_el1");
        $m!(16, "esr_el1");
        $m!(17, "far_el1");
        $m!(18, "afsr0_el1");
        $m!(19, "afsr1_el1");
        $m!(20, "par_el1");
        $m!(21, "cntkctl_el1");
        $m!(22, "csselr_el1");
        $m!(23, "mdscr_el1");
        $m!(24, "cntv_cval_el0");
        $m!(25, "cntp_cval_el0");
        $m!(26, "cntp_ctl_el0");
        $m!(27, "cntv_ctl_el0");
    };
}

/// Calls `$m!(index, "encoding")` for each pointer-authentication key register.
macro_rules! key_regs {
    ($m:ident) => {
        $m!(0, "s3_0_c2_c1_0");
        $m!(1, "s3_0_c2_c1_1");
        $m!(2, "s3_0_c2_c1_2");
        $m!(3, "s3_0_c2_c1_3");
        $m!(4, "s3_0_c2_c2_0");
        $m!(5, "s3_0_c2_c2_1");
        $m!(6, "s3_0_c2_c2_2");
        $m!(7, "s3_0_c2_c2_3");
        $m!(8, "s3_0_c2_c3_0");
        $m!(9, "s3_0_c2_c3_1");
    };
}

/// Whether the CPU implements pointer authentication (and so has the key registers).
fn has_pauth() -> bool {
    let isar1 =
        LocalRegisterCopy::<u64, ID_AA64ISAR1::Register>::new(read_sysreg!("id_aa64isar1_el1"));
    let isar2 =
        LocalRegisterCopy::<u64, ID_AA64ISAR2::Register>::new(read_sysreg!("id_aa64isar2_el1"));
    isar1.read(ID_AA64ISAR1::APA) != 0
        || isar1.read(ID_AA64ISAR1::API) != 0
        || isar1.read(ID_AA64ISAR1::GPA) != 0
        || isar1.read(ID_AA64ISAR1::GPI) != 0
        || isar2.read(ID_AA64ISAR2::APA3) != 0
        || isar2.read(ID_AA64ISAR2::GPA3) != 0
}

/// How many active-priority registers each group has (IHI 0069 12.5.1, 12.5.2: one per 32
/// preemption levels beyond the first 32).
fn nr_apr() -> usize {
    let vtr = LocalRegisterCopy::<u64, ICH_VTR_PRE::Register>::new(read_sysreg!("ich_vtr_el2"));
    match vtr.read(ICH_VTR_PRE::PREbits) + 1 {
        7 => 4,
        6 => 2,
        _ => 1,
    }
}

impl CpuContext {
    /// Takes the running vCPU's state off this CPU, and stops its timers (they must not fire
    /// for the next vCPU).
    pub fn save(&mut self) {
        macro_rules! save {
            ($i:expr, $r:literal) => {
                self.el1[$i] = read_sysreg!($r)
            };
        }
        el1_regs!(save);
        if has_pauth() {
            macro_rules! save_key {
                ($i:expr, $r:literal) => {
                    self.keys[$i] = read_sysreg!($r)
                };
            }
            key_regs!(save_key);
        }
        self.save_fp();
        self.vmcr = read_sysreg!("ich_vmcr_el2");
        let n = nr_apr();
        macro_rules! save_apr {
            ($($i:literal),*) => {$(
                if $i < n {
                    self.ap0r[$i] = read_sysreg!(concat!("ich_ap0r", $i, "_el2"));
                    self.ap1r[$i] = read_sysreg!(concat!("ich_ap1r", $i, "_el2"));
                }
            )*};
        }
        save_apr!(0, 1, 2, 3);
        write_sysreg!("cntv_ctl_el0", 0);
        write_sysreg!("cntp_ctl_el0", 0);
    }

    /// Puts this state back on the CPU (the list registers are the vGIC's to write).
    pub fn restore(&self) {
        macro_rules! restore {
            ($i:expr, $r:literal) => {
                write_sysreg!($r, self.el1[$i])
            };
        }
        el1_regs!(restore);
        if has_pauth() {
            macro_rules! restore_key {
                ($i:expr, $r:literal) => {
                    write_sysreg!($r, self.keys[$i])
                };
            }
            key_regs!(restore_key);
        }
        self.restore_fp();
        write_sysreg!("ich_vmcr_el2", self.vmcr);
        let n = nr_apr();
        macro_rules! restore_apr {
            ($($i:literal),*) => {$(
                if $i < n {
                    write_sysreg!(concat!("ich_ap0r", $i, "_el2"), self.ap0r[$i]);
                    write_sysreg!(concat!("ich_ap1r", $i, "_el2"), self.ap1r[$i]);
                }
            )*};
        }
        restore_apr!(0, 1, 2, 3);
        super::cpu::isb();
    }

    /// The saved virtual timer: CNTV_CTL_EL0 and CNTV_CVAL_EL0 (the scheduler wakes a vCPU
    /// that waits off its CPU when its timer would fire).
    pub fn vtimer(&self) -> (u64, u64) {
        (self.el1[27], self.el1[24])
    }

    /// The saved EL1 physical timer: CNTP_CTL_EL0 and CNTP_CVAL_EL0.
    pub fn ptimer(&self) -> (u64, u64) {
        (self.el1[26], self.el1[25])
    }

    fn save_fp(&mut self) {
        let base = self.fpregs.as_mut_ptr();
        let (fpcr, fpsr): (u64, u64);
        // SAFETY: stores Q0-Q31 into `fpregs` (512 bytes, 16-byte aligned by the struct's
        // alignment and its first position); the core itself never uses FP/SIMD registers.
        unsafe {
            core::arch::asm!(
                ".arch_extension fp",
                ".arch_extension simd",
                "stp q0, q1, [{b}, #0]",
                "stp q2, q3, [{b}, #32]",
                "stp q4, q5, [{b}, #64]",
                "stp q6, q7, [{b}, #96]",
                "stp q8, q9, [{b}, #128]",
                "stp q10, q11, [{b}, #160]",
                "stp q12, q13, [{b}, #192]",
                "stp q14, q15, [{b}, #224]",
                "stp q16, q17, [{b}, #256]",
                "stp q18, q19, [{b}, #288]",
                "stp q20, q21, [{b}, #320]",
                "stp q22, q23, [{b}, #352]",
                "stp q24, q25, [{b}, #384]",
                "stp q26, q27, [{b}, #416]",
                "stp q28, q29, [{b}, #448]",
                "stp q30, q31, [{b}, #480]",
                "mrs {c}, fpcr",
                "mrs {s}, fpsr",
                b = in(reg) base,
                c = out(reg) fpcr,
                s = out(reg) fpsr,
                options(nostack),
            )
        };
        self.fpcr = fpcr;
        self.fpsr = fpsr;
    }

    fn restore_fp(&self) {
        let base = self.fpregs.as_ptr();
        // SAFETY: loads Q0-Q31 from `fpregs` (see `save_fp`); they belong to the guest.
        unsafe {
            core::arch::asm!(
                ".arch_extension fp",
                ".arch_extension simd",
                "ldp q0, q1, [{b}, #0]",
                "ldp q2, q3, [{b}, #32]",
                "ldp q4, q5, [{b}, #64]",
                "ldp q6, q7, [{b}, #96]",
                "ldp q8, q9, [{b}, #128]",
                "ldp q10, q11, [{b}, #160]",
                "ldp q12, q13, [{b}, #192]",
                "ldp q14, q15, [{b}, #224]",
                "ldp q16, q17, [{b}, #256]",
                "ldp q18, q19, [{b}, #288]",
                "ldp q20, q21, [{b}, #320]",
                "ldp q22, q23, [{b}, #352]",
                "ldp q24, q25, [{b}, #384]",
                "ldp q26, q27, [{b}, #416]",
                "ldp q28, q29, [{b}, #448]",
                "ldp q30, q31, [{b}, #480]",
                "msr fpcr, {c}",
                "msr fpsr, {s}",
                b = in(reg) base,
                c = in(reg) self.fpcr,
                s = in(reg) self.fpsr,
                options(nostack, readonly),
            )
        };
    }
}
