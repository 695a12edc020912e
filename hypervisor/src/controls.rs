//! The values the core loads into EL2 and EL1 controls to run a guest or the VMM partition:
//! what traps, what a vCPU starting afresh looks like. Plain values over named fields, read
//! from the ID registers through the arch interface, so the host tests check them.

use crate::arch::regs::{CNTHCTL, CPTR_EL2, ID_AA64PFR0, ID_AA64PFR1, MPIDR, SCTLR_EL1_RES1, SPSR};
use crate::arch::{id, GuestControls};
use aarch64_cpu::registers::HCR_EL2;
use abi::VcpuId;
use tock_registers::LocalRegisterCopy;

/// ID_AA64PFR0_EL1 and ID_AA64PFR1_EL1: `S3_0_C0_C4_0` and `_1`.
const PFR_CRM: u8 = 4;

/// HCR_EL2 while a guest runs: stage 2 on; IRQ/FIQ/SError to EL2 (which gives the guest the
/// virtual CPU interface); SMC and WFI trapped; pointer authentication and AArch64 EL1.
/// WFE is trapped only on a CPU shared with other vCPUs (a spinning vCPU then lets the lock
/// holder run; alone on its CPU it loses nothing by spinning, and Linux's spinlocks use it),
/// and so are the ID registers (to hide SVE and SME, whose state is not switched).
/// FB (broadcast of local TLB and I-cache invalidations) stays off: a vCPU never moves to
/// another CPU, so its local invalidations need not reach others (under QEMU each broadcast
/// is a synchronous flush of every CPU).
pub fn guest_hcr(shared: bool) -> u64 {
    let mut v = HCR_EL2::VM::Enable
        + HCR_EL2::SWIO::SET
        + HCR_EL2::FMO::EnableVirtualFIQ
        + HCR_EL2::IMO::EnableVirtualIRQ
        + HCR_EL2::AMO::SET
        + HCR_EL2::BSU::InnerShareable
        + HCR_EL2::TSC::EnableTrapEl1SmcToEl2
        + HCR_EL2::TWI::SET
        + HCR_EL2::RW::EL1IsAarch64
        + HCR_EL2::API::DisableTrapPointerAuthInstToEl2
        + HCR_EL2::APK::DisableTrapPointerAuthKeyRegsToEl2;
    if shared {
        v += HCR_EL2::TWE::SET + HCR_EL2::TID3::SET;
    }
    v.value
}

/// HCR_EL2 while the VMM runs: stage 2 on, every interrupt to EL2, SMC trapped, AArch64.
pub fn vmm_hcr() -> u64 {
    (HCR_EL2::VM::Enable
        + HCR_EL2::SWIO::SET
        + HCR_EL2::FMO::EnableVirtualFIQ
        + HCR_EL2::IMO::EnableVirtualIRQ
        + HCR_EL2::AMO::SET
        + HCR_EL2::TSC::EnableTrapEl1SmcToEl2
        + HCR_EL2::RW::EL1IsAarch64)
        .value
}

/// CPTR_EL2: FP stays the guest's; SVE and SME too on a CPU of its own (trapped, and hidden,
/// when shared); RES1 bits set, and the trap bits of absent features left at their RES1 value.
pub fn guest_cptr(shared: bool) -> u64 {
    let pfr0 = LocalRegisterCopy::<u64, ID_AA64PFR0::Register>::new(id::read(PFR_CRM, 0));
    let pfr1 = LocalRegisterCopy::<u64, ID_AA64PFR1::Register>::new(id::read(PFR_CRM, 1));
    let mut v = CPTR_EL2::RES1_13::SET + CPTR_EL2::RES1_9::SET + CPTR_EL2::RES1_LOW.val(0xff);
    if shared || pfr0.read(ID_AA64PFR0::SVE) == 0 {
        v += CPTR_EL2::TZ::SET;
    }
    if shared || pfr1.read(ID_AA64PFR1::SME) == 0 {
        v += CPTR_EL2::TSM::SET;
    }
    v.value
}

/// The EL2 controls of vCPU `v` of a VM (`shared`: its CPU time-shares vCPUs).
pub fn for_guest(shared: bool, v: VcpuId, cntvoff: u64, vtcr: u64, vttbr: u64) -> GuestControls {
    GuestControls {
        hcr: guest_hcr(shared),
        cptr: guest_cptr(shared),
        cnthctl: (CNTHCTL::EL1PCEN::SET + CNTHCTL::EL1PCTEN::SET).value,
        cntvoff,
        vmpidr: MPIDR::RES1::SET.value | v.mpidr_affinity(),
        vtcr,
        vttbr,
    }
}

/// SCTLR_EL1 as the arm64 boot protocol wants it: MMU and caches off, RES1 bits set.
pub fn boot_sctlr() -> u64 {
    (SCTLR_EL1_RES1::B28.val(3)
        + SCTLR_EL1_RES1::B22.val(3)
        + SCTLR_EL1_RES1::B20::SET
        + SCTLR_EL1_RES1::B11::SET)
        .value
}

/// PSTATE of a vCPU starting afresh: EL1h, every exception masked.
pub fn boot_spsr() -> u64 {
    (SPSR::M::EL1h + SPSR::D::SET + SPSR::A::SET + SPSR::I::SET + SPSR::F::SET).value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::fake::with_cpu;
    use tock_registers::fields::FieldValue;

    fn has(v: u64, f: FieldValue<u64, HCR_EL2::Register>) -> bool {
        v & f.mask() == f.value
    }

    #[test]
    fn a_shared_cpu_traps_wfe_and_the_id_registers() {
        let alone = guest_hcr(false);
        let shared = guest_hcr(true);
        for v in [alone, shared] {
            assert!(has(v, HCR_EL2::VM::Enable));
            assert!(has(v, HCR_EL2::TSC::EnableTrapEl1SmcToEl2));
            assert!(has(v, HCR_EL2::TWI::SET));
            assert!(has(v, HCR_EL2::IMO::EnableVirtualIRQ));
        }
        assert!(!has(alone, HCR_EL2::TWE::SET) && !has(alone, HCR_EL2::TID3::SET));
        assert!(has(shared, HCR_EL2::TWE::SET) && has(shared, HCR_EL2::TID3::SET));
        // The partition gets no virtual timer traps of the guest kind, and no WFI trap.
        assert!(!has(vmm_hcr(), HCR_EL2::TWI::SET));
    }

    fn cptr_with(sve: bool, sme: bool, shared: bool) -> LocalRegisterCopy<u64, CPTR_EL2::Register> {
        with_cpu(|c| {
            c.id[usize::from(PFR_CRM)][0] = if sve {
                ID_AA64PFR0::SVE.val(1).value
            } else {
                0
            };
            c.id[usize::from(PFR_CRM)][1] = if sme {
                ID_AA64PFR1::SME.val(1).value
            } else {
                0
            };
        });
        LocalRegisterCopy::new(guest_cptr(shared))
    }

    #[test]
    fn sve_and_sme_are_the_guests_only_on_a_cpu_of_its_own() {
        let alone = cptr_with(true, true, false);
        assert!(!alone.is_set(CPTR_EL2::TZ) && !alone.is_set(CPTR_EL2::TSM));
        let shared = cptr_with(true, true, true);
        assert!(shared.is_set(CPTR_EL2::TZ) && shared.is_set(CPTR_EL2::TSM));
        // Absent features keep their trap bits at their RES1 value.
        let absent = cptr_with(false, false, false);
        assert!(absent.is_set(CPTR_EL2::TZ) && absent.is_set(CPTR_EL2::TSM));
        for c in [alone, shared, absent] {
            assert!(!c.is_set(CPTR_EL2::TFP), "FP/SIMD is never trapped");
            assert_eq!(c.read(CPTR_EL2::RES1_LOW), 0xff);
        }
    }

    #[test]
    fn a_vcpus_controls() {
        let c = for_guest(true, VcpuId(3), 1234, 0x55, 0x66);
        assert_eq!(c.hcr, guest_hcr(true));
        assert_eq!((c.cntvoff, c.vtcr, c.vttbr), (1234, 0x55, 0x66));
        let mpidr = LocalRegisterCopy::<u64, MPIDR::Register>::new(c.vmpidr);
        assert!(mpidr.is_set(MPIDR::RES1));
        assert_eq!(mpidr.read(MPIDR::AFF0), 3);
        let cnthctl = LocalRegisterCopy::<u64, CNTHCTL::Register>::new(c.cnthctl);
        assert!(cnthctl.is_set(CNTHCTL::EL1PCEN) && cnthctl.is_set(CNTHCTL::EL1PCTEN));
    }

    #[test]
    fn a_fresh_vcpu_starts_in_el1h_with_everything_masked_and_the_mmu_off() {
        let spsr = LocalRegisterCopy::<u64, SPSR::Register>::new(boot_spsr());
        assert!(spsr.matches_all(SPSR::M::EL1h));
        for f in [SPSR::D, SPSR::A, SPSR::I, SPSR::F] {
            assert!(spsr.is_set(f));
        }
        use aarch64_cpu::registers::SCTLR_EL1;
        let sctlr = LocalRegisterCopy::<u64, SCTLR_EL1::Register>::new(boot_sctlr());
        for f in [SCTLR_EL1::M, SCTLR_EL1::C, SCTLR_EL1::I] {
            assert!(!sctlr.is_set(f));
        }
    }
}
