//! PSCI 1.1 (Arm DEN 0022) and the SMCCC 1.1 architecture calls (Arm DEN 0028) as the core
//! offers them to guests, over HVC or a trapped SMC.
//!
//! Two pure steps: [`decode`] turns the caller's x0..x3 into a [`PsciCall`] (applying the
//! SMC32/HVC32 rule that only the low 32 bits of each argument count), and [`handle`] decides
//! what happens, asking the vCPU/VM state it needs through [`PsciContext`]. The core carries out
//! the returned [`PsciAction`].
//!
//! What a guest sees: PSCI 1.1 with the mandatory functions plus MIGRATE_INFO_TYPE (no Trusted
//! OS to migrate), CPU_SUSPEND in the original power_state format without OS-initiated mode,
//! AFFINITY_INFO for level 0 only (levels above 0 are optional from PSCI 1.0), and SMCCC 1.1
//! with the CPU-vulnerability workarounds answered from the machine's firmware.
//!
//! SMCCC_ARCH_WORKAROUND_2 (Spectre v4/SSBD) is not forwarded. The call switches a mitigation
//! of the physical CPU on or off, which would outlive the vCPU on that CPU and let a guest turn
//! the mitigation off under the hypervisor and other guests. The core instead keeps the
//! mitigation on for good: where firmware offers the dynamic call (its
//! SMCCC_ARCH_FEATURES answer is 0), the core calls it with enable = 1 at boot on every CPU, and
//! guests are told NOT_REQUIRED, which means "mitigated by firmware". KVM answers the same way.

use abi::{GuestPhysAddr, VcpuId};
use tock_registers::{register_bitfields, LocalRegisterCopy};

use crate::sysreg::MPIDR;

/// Function identifiers (DEN 0022, "PSCI function IDs"; DEN 0028, "Arm Architecture
/// Calls"), in their SMC32 and SMC64 forms.
pub mod fid {
    /// PSCI_VERSION.
    pub const PSCI_VERSION: u32 = 0x8400_0000;
    /// CPU_SUSPEND, SMC32 form.
    pub const CPU_SUSPEND_32: u32 = 0x8400_0001;
    /// CPU_SUSPEND, SMC64 form.
    pub const CPU_SUSPEND_64: u32 = 0xc400_0001;
    /// CPU_OFF.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// CPU_ON, SMC32 form.
    pub const CPU_ON_32: u32 = 0x8400_0003;
    /// CPU_ON, SMC64 form.
    pub const CPU_ON_64: u32 = 0xc400_0003;
    /// AFFINITY_INFO, SMC32 form.
    pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
    /// AFFINITY_INFO, SMC64 form.
    pub const AFFINITY_INFO_64: u32 = 0xc400_0004;
    /// MIGRATE, SMC32 form (not offered: there is no Trusted OS to migrate).
    pub const MIGRATE_32: u32 = 0x8400_0005;
    /// MIGRATE_INFO_TYPE.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// SYSTEM_OFF.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// SYSTEM_RESET.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// PSCI_FEATURES.
    pub const PSCI_FEATURES: u32 = 0x8400_000a;
    /// SYSTEM_SUSPEND, SMC64 form (not offered).
    pub const SYSTEM_SUSPEND_64: u32 = 0xc400_000e;
    /// SYSTEM_RESET2, SMC64 form (not offered).
    pub const SYSTEM_RESET2_64: u32 = 0xc400_0012;
    /// SMCCC_VERSION.
    pub const SMCCC_VERSION: u32 = 0x8000_0000;
    /// SMCCC_ARCH_FEATURES.
    pub const SMCCC_ARCH_FEATURES: u32 = 0x8000_0001;
    /// SMCCC_ARCH_WORKAROUND_1 (Spectre v2, CVE-2017-5715).
    pub const SMCCC_ARCH_WORKAROUND_1: u32 = 0x8000_8000;
    /// SMCCC_ARCH_WORKAROUND_2 (Spectre v4, CVE-2018-3639).
    pub const SMCCC_ARCH_WORKAROUND_2: u32 = 0x8000_7fff;
    /// SMCCC_ARCH_WORKAROUND_3 (Spectre-BHB, CVE-2022-23960).
    pub const SMCCC_ARCH_WORKAROUND_3: u32 = 0x8000_3fff;
}

/// PSCI return codes (DEN 0022, "Return error codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum PsciStatus {
    /// SUCCESS.
    Success = 0,
    /// NOT_SUPPORTED (also SMCCC's NOT_SUPPORTED, the value for an unknown function).
    NotSupported = -1,
    /// INVALID_PARAMETERS.
    InvalidParameters = -2,
    /// DENIED.
    Denied = -3,
    /// ALREADY_ON.
    AlreadyOn = -4,
    /// ON_PENDING.
    OnPending = -5,
    /// INTERNAL_FAILURE.
    InternalFailure = -6,
    /// NOT_PRESENT.
    NotPresent = -7,
    /// DISABLED.
    Disabled = -8,
    /// INVALID_ADDRESS.
    InvalidAddress = -9,
}

impl PsciStatus {
    /// The value for x0: the code sign-extended to 64 bits.
    pub const fn to_x0(self) -> u64 {
        self as i32 as i64 as u64
    }
}

/// SMCCC return code NOT_REQUIRED (DEN 0028): for a workaround, "this system needs no
/// mitigation from the caller".
pub const SMCCC_RET_NOT_REQUIRED: i32 = -2;

/// PSCI 1.1 as PSCI_VERSION reports it (major in bits 30..16, minor in bits 15..0).
pub const PSCI_VERSION_1_1: u64 = 0x1_0001;
/// SMCCC 1.1 as SMCCC_VERSION reports it.
pub const SMCCC_VERSION_1_1: u64 = 0x1_0001;
/// MIGRATE_INFO_TYPE's answer: no Trusted OS, or one that needs no migration.
pub const MIGRATE_INFO_TYPE_NOT_PRESENT: u64 = 2;
/// PSCI_FEATURES(CPU_SUSPEND): bit 1 = 0, the original power_state format; bit 0 = 0, no
/// OS-initiated mode.
pub const CPU_SUSPEND_FEATURES: i32 = 0;

register_bitfields! {u64,
    /// CPU_SUSPEND's power_state in the original format (DEN 0022, CPU_SUSPEND, "power_state
    /// parameter"). The other bits are reserved and must be zero.
    pub POWER_STATE [
        /// Power level of the deepest power domain to power down.
        POWER_LEVEL OFFSET(24) NUMBITS(2) [],
        /// Standby (or retention), or power down.
        STATE_TYPE OFFSET(16) NUMBITS(1) [
            Standby = 0,
            PowerDown = 1
        ],
        /// An implementation-defined state identifier.
        STATE_ID OFFSET(0) NUMBITS(16) []
    ]
}

/// A PSCI or SMCCC architecture call, decoded from x0..x3 by [`decode`]. Arguments of a 32-bit
/// call hold only the low 32 bits of their registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciCall {
    /// PSCI_VERSION.
    PsciVersion,
    /// CPU_SUSPEND (SMC32 or SMC64).
    CpuSuspend {
        /// The requested power state (a 32-bit parameter in both forms).
        power_state: u32,
        /// Where to resume after a power-down state.
        entry: u64,
        /// The value for x0 on resume after a power-down state.
        context: u64,
    },
    /// CPU_OFF.
    CpuOff,
    /// CPU_ON (SMC32 or SMC64).
    CpuOn {
        /// The MPIDR affinity of the vCPU to start.
        target: u64,
        /// Its entry point.
        entry: u64,
        /// Its x0 at entry.
        context: u64,
    },
    /// AFFINITY_INFO (SMC32 or SMC64).
    AffinityInfo {
        /// The MPIDR affinity of the node asked about.
        target: u64,
        /// The lowest affinity level to consider (a 32-bit parameter in both forms).
        lowest_level: u32,
    },
    /// MIGRATE_INFO_TYPE.
    MigrateInfoType,
    /// SYSTEM_OFF.
    SystemOff,
    /// SYSTEM_RESET.
    SystemReset,
    /// PSCI_FEATURES.
    PsciFeatures {
        /// The function asked about.
        fid: u32,
    },
    /// SMCCC_VERSION.
    SmcccVersion,
    /// SMCCC_ARCH_FEATURES.
    SmcccArchFeatures {
        /// The function asked about.
        fid: u32,
    },
    /// SMCCC_ARCH_WORKAROUND_1, _2 or _3.
    ArchWorkaround {
        /// Which one.
        fid: u32,
    },
    /// Any other function identifier.
    Unknown {
        /// The function identifier (W0).
        fid: u32,
    },
}

/// The power state of a vCPU, as PSCI sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VcpuPower {
    /// Running (or suspended, which is still on).
    On,
    /// Off: never started, or after CPU_OFF.
    Off,
    /// A CPU_ON for it was accepted and it has not started yet.
    OnPending,
}

impl VcpuPower {
    /// AFFINITY_INFO's answer for this state (DEN 0022, AFFINITY_INFO).
    pub const fn affinity_info(self) -> u64 {
        match self {
            Self::On => 0,
            Self::Off => 1,
            Self::OnPending => 2,
        }
    }
}

/// What [`handle`] needs to know about the VM and the machine.
pub trait PsciContext {
    /// The vCPU making the call.
    fn caller(&self) -> VcpuId;
    /// The number of vCPUs of the VM.
    fn vcpu_count(&self) -> usize;
    /// The power state of vCPU `v` (`v` is always below [`Self::vcpu_count`]).
    fn power_state(&self, v: VcpuId) -> VcpuPower;
    /// Whether `ipa` is guest RAM, so a vCPU may start executing there.
    fn is_guest_ram(&self, ipa: GuestPhysAddr) -> bool;
    /// The machine firmware's SMCCC_ARCH_FEATURES answer for `fid`. It must hold for every
    /// physical CPU the vCPU may run on (on a big.LITTLE machine: if any CPU needs the
    /// mitigation, answer as that CPU does), since the vCPU can move between them.
    fn firmware_arch_features(&self, fid: u32) -> i32;
}

/// What the core does for a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciAction {
    /// Write this to the caller's x0 and resume it. Negative codes are sign-extended.
    Return(u64),
    /// Mark `target` ON_PENDING, start it at `entry` with x0 = `context` (in EL1h with DAIF
    /// masked and the MMU off: DEN 0022, "CPU_ON" and the entry state it requires), and
    /// return SUCCESS to the caller.
    CpuOn {
        /// The vCPU to start (never the caller; it was Off).
        target: VcpuId,
        /// Its entry point, in guest RAM.
        entry: GuestPhysAddr,
        /// Its x0 at entry.
        context: u64,
    },
    /// Power the caller off; the call does not return.
    CpuOff,
    /// Suspend the caller until it has an interrupt to take. A standby state returns SUCCESS
    /// to the caller when it wakes. A power-down state may be treated the same way (PSCI lets
    /// an implementation enter a shallower state than requested), or resume at `entry` with
    /// x0 = `context`. `entry` is checked to be guest RAM only for power-down.
    CpuSuspend {
        /// The request was for a standby state.
        standby: bool,
        /// The resume address for a power-down state.
        entry: GuestPhysAddr,
        /// The x0 to resume with after a power-down state.
        context: u64,
    },
    /// Power the VM off; the call does not return.
    SystemOff,
    /// Reset the VM; the call does not return.
    SystemReset,
    /// Call the machine firmware's SMCCC_ARCH_WORKAROUND_n (this function ID), then resume the
    /// caller without writing its x0..x3. The workaround calls have no return value (DEN 0028,
    /// "SMCCC_ARCH_WORKAROUND_1": Return: none), and under SMCCC 1.1 a caller must treat
    /// x0..x3 as clobbered, so leaving them is correct, as TF-A does.
    ForwardWorkaround(u32),
}

/// The W-register view of an argument: SMC32/HVC32 calls pass W registers (DEN 0028, "SMC32/HVC32
/// argument passing"), so the bits above are whatever the caller left there.
fn w(x: u64) -> u64 {
    u64::from(x as u32)
}

/// Decodes a call from the caller's x0..x3. The function identifier is W0; arguments of SMC32
/// calls are truncated to 32 bits.
pub fn decode(x0: u64, x1: u64, x2: u64, x3: u64) -> PsciCall {
    let fid = x0 as u32;
    match fid {
        fid::PSCI_VERSION => PsciCall::PsciVersion,
        fid::CPU_SUSPEND_32 => PsciCall::CpuSuspend {
            power_state: x1 as u32,
            entry: w(x2),
            context: w(x3),
        },
        fid::CPU_SUSPEND_64 => PsciCall::CpuSuspend {
            power_state: x1 as u32,
            entry: x2,
            context: x3,
        },
        fid::CPU_OFF => PsciCall::CpuOff,
        fid::CPU_ON_32 => PsciCall::CpuOn {
            target: w(x1),
            entry: w(x2),
            context: w(x3),
        },
        fid::CPU_ON_64 => PsciCall::CpuOn {
            target: x1,
            entry: x2,
            context: x3,
        },
        fid::AFFINITY_INFO_32 => PsciCall::AffinityInfo {
            target: w(x1),
            lowest_level: x2 as u32,
        },
        fid::AFFINITY_INFO_64 => PsciCall::AffinityInfo {
            target: x1,
            lowest_level: x2 as u32,
        },
        fid::MIGRATE_INFO_TYPE => PsciCall::MigrateInfoType,
        fid::SYSTEM_OFF => PsciCall::SystemOff,
        fid::SYSTEM_RESET => PsciCall::SystemReset,
        fid::PSCI_FEATURES => PsciCall::PsciFeatures { fid: x1 as u32 },
        fid::SMCCC_VERSION => PsciCall::SmcccVersion,
        fid::SMCCC_ARCH_FEATURES => PsciCall::SmcccArchFeatures { fid: x1 as u32 },
        fid::SMCCC_ARCH_WORKAROUND_1
        | fid::SMCCC_ARCH_WORKAROUND_2
        | fid::SMCCC_ARCH_WORKAROUND_3 => PsciCall::ArchWorkaround { fid },
        fid => PsciCall::Unknown { fid },
    }
}

/// Decides what a call does. Never panics, whatever the guest passed.
pub fn handle(call: &PsciCall, ctx: &dyn PsciContext) -> PsciAction {
    use PsciAction::Return;
    let status = |s: PsciStatus| Return(s.to_x0());
    match *call {
        PsciCall::PsciVersion => Return(PSCI_VERSION_1_1),
        PsciCall::CpuSuspend {
            power_state,
            entry,
            context,
        } => {
            let state = LocalRegisterCopy::<u64, POWER_STATE::Register>::new(power_state.into());
            let defined = POWER_STATE::POWER_LEVEL.val(0)
                + POWER_STATE::STATE_TYPE.val(0)
                + POWER_STATE::STATE_ID.val(0);
            if state.get() & !defined.mask() != 0 {
                return status(PsciStatus::InvalidParameters);
            }
            let standby = state.matches_all(POWER_STATE::STATE_TYPE::Standby);
            let entry = GuestPhysAddr(entry);
            if !standby && !ctx.is_guest_ram(entry) {
                return status(PsciStatus::InvalidAddress);
            }
            PsciAction::CpuSuspend {
                standby,
                entry,
                context,
            }
        }
        PsciCall::CpuOff => PsciAction::CpuOff,
        PsciCall::CpuOn {
            target,
            entry,
            context,
        } => {
            let Some(target) = vcpu_at(target, ctx.vcpu_count()) else {
                return status(PsciStatus::InvalidParameters);
            };
            if target == ctx.caller() {
                return status(PsciStatus::AlreadyOn);
            }
            match ctx.power_state(target) {
                VcpuPower::On => status(PsciStatus::AlreadyOn),
                VcpuPower::OnPending => status(PsciStatus::OnPending),
                VcpuPower::Off if !ctx.is_guest_ram(GuestPhysAddr(entry)) => {
                    status(PsciStatus::InvalidAddress)
                }
                VcpuPower::Off => PsciAction::CpuOn {
                    target,
                    entry: GuestPhysAddr(entry),
                    context,
                },
            }
        }
        PsciCall::AffinityInfo {
            target,
            lowest_level,
        } => match (lowest_level, vcpu_at(target, ctx.vcpu_count())) {
            (0, Some(vcpu)) => Return(ctx.power_state(vcpu).affinity_info()),
            _ => status(PsciStatus::InvalidParameters),
        },
        PsciCall::MigrateInfoType => Return(MIGRATE_INFO_TYPE_NOT_PRESENT),
        PsciCall::SystemOff => PsciAction::SystemOff,
        PsciCall::SystemReset => PsciAction::SystemReset,
        PsciCall::PsciFeatures { fid } => Return(sign_extend(psci_features(fid))),
        PsciCall::SmcccVersion => Return(SMCCC_VERSION_1_1),
        PsciCall::SmcccArchFeatures { fid } => Return(sign_extend(arch_features(fid, ctx))),
        PsciCall::ArchWorkaround { fid } => {
            // WORKAROUND_2 is never forwarded (see the module documentation); the others are
            // when the firmware implements them (any answer >= 0).
            if fid != fid::SMCCC_ARCH_WORKAROUND_2 && ctx.firmware_arch_features(fid) >= 0 {
                PsciAction::ForwardWorkaround(fid)
            } else {
                status(PsciStatus::NotSupported)
            }
        }
        PsciCall::Unknown { .. } => status(PsciStatus::NotSupported),
    }
}

fn sign_extend(code: i32) -> u64 {
    code as i64 as u64
}

/// The vCPU a PSCI target_cpu/target_affinity names: only the MPIDR affinity fields may be
/// set (DEN 0022, CPU_ON "target_cpu"; other bits must be zero), and they must name one of
/// `count` vCPUs.
fn vcpu_at(target: u64, count: usize) -> Option<VcpuId> {
    let affinity =
        MPIDR::AFF3.val(0) + MPIDR::AFF2.val(0) + MPIDR::AFF1.val(0) + MPIDR::AFF0.val(0);
    if target & !affinity.mask() != 0 {
        return None;
    }
    VcpuId::from_mpidr_affinity(target, count)
}

/// PSCI_FEATURES: every function [`decode`] recognises as PSCI, and SMCCC_VERSION, is
/// implemented; the SMCCC architecture calls are discovered with SMCCC_ARCH_FEATURES instead.
fn psci_features(fid: u32) -> i32 {
    match decode(fid.into(), 0, 0, 0) {
        PsciCall::CpuSuspend { .. } => CPU_SUSPEND_FEATURES,
        PsciCall::Unknown { .. }
        | PsciCall::SmcccArchFeatures { .. }
        | PsciCall::ArchWorkaround { .. } => PsciStatus::NotSupported as i32,
        _ => PsciStatus::Success as i32,
    }
}

/// SMCCC_ARCH_FEATURES: the workarounds as the firmware answers (WORKAROUND_2's dynamic
/// answer becomes NOT_REQUIRED, see the module documentation); SMCCC_VERSION and
/// SMCCC_ARCH_FEATURES themselves are implemented.
fn arch_features(fid: u32, ctx: &dyn PsciContext) -> i32 {
    match fid {
        fid::SMCCC_VERSION | fid::SMCCC_ARCH_FEATURES => PsciStatus::Success as i32,
        fid::SMCCC_ARCH_WORKAROUND_1 | fid::SMCCC_ARCH_WORKAROUND_3 => {
            ctx.firmware_arch_features(fid)
        }
        fid::SMCCC_ARCH_WORKAROUND_2 => match ctx.firmware_arch_features(fid) {
            0 => SMCCC_RET_NOT_REQUIRED,
            other => other,
        },
        _ => PsciStatus::NotSupported as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::layout::RAM_BASE;

    /// A VM of four vCPUs: 0 (the caller) on, 1 off, 2 on-pending, 3 on. RAM is 1 GiB at
    /// RAM_BASE. Firmware implements WORKAROUND_1 and the dynamic WORKAROUND_2, not _3.
    struct Fake {
        caller: VcpuId,
        states: [VcpuPower; 4],
    }

    impl Fake {
        fn new() -> Self {
            Self {
                caller: VcpuId(0),
                states: [
                    VcpuPower::On,
                    VcpuPower::Off,
                    VcpuPower::OnPending,
                    VcpuPower::On,
                ],
            }
        }
    }

    impl PsciContext for Fake {
        fn caller(&self) -> VcpuId {
            self.caller
        }
        fn vcpu_count(&self) -> usize {
            self.states.len()
        }
        fn power_state(&self, v: VcpuId) -> VcpuPower {
            self.states[v.index()]
        }
        fn is_guest_ram(&self, ipa: GuestPhysAddr) -> bool {
            (RAM_BASE.raw()..RAM_BASE.raw() + (1 << 30)).contains(&ipa.raw())
        }
        fn firmware_arch_features(&self, fid: u32) -> i32 {
            match fid {
                fid::SMCCC_ARCH_WORKAROUND_1 | fid::SMCCC_ARCH_WORKAROUND_2 => 0,
                _ => -1,
            }
        }
    }

    const ENTRY: u64 = 0x4008_0000;

    fn call(x0: u32, x1: u64, x2: u64, x3: u64) -> PsciAction {
        handle(&decode(x0.into(), x1, x2, x3), &Fake::new())
    }

    fn ret(status: PsciStatus) -> PsciAction {
        PsciAction::Return(status.to_x0())
    }

    #[test]
    fn versions() {
        assert_eq!(
            call(fid::PSCI_VERSION, 0, 0, 0),
            PsciAction::Return(0x1_0001)
        );
        assert_eq!(
            call(fid::SMCCC_VERSION, 0, 0, 0),
            PsciAction::Return(0x1_0001)
        );
        // W0 is the function ID: upper bits of x0 are ignored.
        assert_eq!(
            handle(
                &decode(
                    0xffff_ffff_0000_0000 | u64::from(fid::PSCI_VERSION),
                    0,
                    0,
                    0
                ),
                &Fake::new()
            ),
            PsciAction::Return(0x1_0001)
        );
    }

    #[test]
    fn return_codes_are_sign_extended() {
        assert_eq!(PsciStatus::NotSupported.to_x0(), u64::MAX);
        assert_eq!(PsciStatus::InvalidAddress.to_x0(), 0xffff_ffff_ffff_fff7);
    }

    #[test]
    fn cpu_on() {
        let on = |target: u64, entry: u64| call(fid::CPU_ON_64, target, entry, 0x55);
        assert_eq!(
            on(1, ENTRY),
            PsciAction::CpuOn {
                target: VcpuId(1),
                entry: GuestPhysAddr(ENTRY),
                context: 0x55
            }
        );
        assert_eq!(
            on(0, ENTRY),
            ret(PsciStatus::AlreadyOn),
            "the caller itself"
        );
        assert_eq!(on(3, ENTRY), ret(PsciStatus::AlreadyOn));
        assert_eq!(on(2, ENTRY), ret(PsciStatus::OnPending));
        assert_eq!(
            on(4, ENTRY),
            ret(PsciStatus::InvalidParameters),
            "beyond the VM"
        );
        assert_eq!(
            on(0x100, ENTRY),
            ret(PsciStatus::InvalidParameters),
            "Aff1 = 1"
        );
        assert_eq!(
            on(0x10, ENTRY),
            ret(PsciStatus::InvalidParameters),
            "Aff0 = 16"
        );
        assert_eq!(
            on(1 << 31 | 1, ENTRY),
            ret(PsciStatus::InvalidParameters),
            "non-affinity bit"
        );
        assert_eq!(
            on(1, 0x1000),
            ret(PsciStatus::InvalidAddress),
            "entry outside RAM"
        );
        assert_eq!(
            on(1, RAM_BASE.raw() + (1 << 30)),
            ret(PsciStatus::InvalidAddress)
        );
        // The state check comes before the address check.
        assert_eq!(on(2, 0), ret(PsciStatus::OnPending));
    }

    #[test]
    fn cpu_on_32_truncates_its_arguments() {
        // Upper halves of x1..x3 are garbage a 32-bit caller may leave.
        let junk = 0xdead_beef_0000_0000;
        assert_eq!(
            call(fid::CPU_ON_32, junk | 1, junk | ENTRY, junk | 7),
            PsciAction::CpuOn {
                target: VcpuId(1),
                entry: GuestPhysAddr(ENTRY),
                context: 7
            }
        );
        // The same values through CPU_ON_64 are rejected: bits above Aff3 are set.
        assert_eq!(
            call(fid::CPU_ON_64, junk | 1, ENTRY, 0),
            ret(PsciStatus::InvalidParameters)
        );
        // And a 64-bit entry above 4 GiB survives the 64-bit form only.
        assert_eq!(
            call(fid::CPU_ON_64, 1, junk | ENTRY, 0),
            ret(PsciStatus::InvalidAddress)
        );
    }

    #[test]
    fn cpu_suspend() {
        let standby = 0x0001; // StateType 0, StateID 1
        let powerdown = 1 << 16;
        assert_eq!(
            call(fid::CPU_SUSPEND_32, standby, 0, 0),
            PsciAction::CpuSuspend {
                standby: true,
                entry: GuestPhysAddr(0),
                context: 0
            },
            "standby ignores the entry point"
        );
        assert_eq!(
            call(fid::CPU_SUSPEND_64, powerdown, ENTRY, 9),
            PsciAction::CpuSuspend {
                standby: false,
                entry: GuestPhysAddr(ENTRY),
                context: 9
            }
        );
        assert_eq!(
            call(fid::CPU_SUSPEND_64, powerdown, 0x10, 0),
            ret(PsciStatus::InvalidAddress)
        );
        assert_eq!(
            call(fid::CPU_SUSPEND_32, 1 << 30, 0, 0),
            ret(PsciStatus::InvalidParameters)
        );
        assert_eq!(
            call(fid::CPU_SUSPEND_32, 1 << 20, 0, 0),
            ret(PsciStatus::InvalidParameters)
        );
        // power_state is 32 bits in both forms: bit 32 is not a reserved bit being set.
        assert!(matches!(
            call(fid::CPU_SUSPEND_64, 1 << 32 | powerdown, ENTRY, 0),
            PsciAction::CpuSuspend { standby: false, .. }
        ));
        // The 32-bit form truncates the entry point.
        assert!(matches!(
            call(fid::CPU_SUSPEND_32, powerdown, 0x1_0000_0000 | ENTRY, 0),
            PsciAction::CpuSuspend {
                standby: false,
                entry: GuestPhysAddr(ENTRY),
                ..
            }
        ));
    }

    #[test]
    fn cpu_off_system_off_reset() {
        assert_eq!(call(fid::CPU_OFF, 0, 0, 0), PsciAction::CpuOff);
        assert_eq!(call(fid::SYSTEM_OFF, 0, 0, 0), PsciAction::SystemOff);
        assert_eq!(call(fid::SYSTEM_RESET, 0, 0, 0), PsciAction::SystemReset);
    }

    #[test]
    fn affinity_info() {
        let info = |target: u64, level: u64| call(fid::AFFINITY_INFO_64, target, level, 0);
        assert_eq!(info(0, 0), PsciAction::Return(0));
        assert_eq!(info(1, 0), PsciAction::Return(1));
        assert_eq!(info(2, 0), PsciAction::Return(2));
        assert_eq!(info(1, 1), ret(PsciStatus::InvalidParameters), "level 1");
        assert_eq!(info(1, 3), ret(PsciStatus::InvalidParameters), "level 3");
        assert_eq!(
            info(7, 0),
            ret(PsciStatus::InvalidParameters),
            "no such vCPU"
        );
        // The level is 32 bits: junk above it is ignored.
        assert_eq!(info(1, 1 << 32), PsciAction::Return(1));
        // The 32-bit form truncates the target.
        assert_eq!(
            call(fid::AFFINITY_INFO_32, 1 << 32 | 1, 0, 0),
            PsciAction::Return(1)
        );
        assert_eq!(
            call(fid::AFFINITY_INFO_64, 1 << 32 | 1, 0, 0),
            ret(PsciStatus::InvalidParameters),
            "Aff3 = 1 names no vCPU"
        );
    }

    #[test]
    fn migrate_info_type() {
        assert_eq!(call(fid::MIGRATE_INFO_TYPE, 0, 0, 0), PsciAction::Return(2));
        assert_eq!(
            call(fid::MIGRATE_32, 0, 0, 0),
            ret(PsciStatus::NotSupported)
        );
    }

    #[test]
    fn psci_features() {
        let features = |f: u32| call(fid::PSCI_FEATURES, f.into(), 0, 0);
        for implemented in [
            fid::PSCI_VERSION,
            fid::CPU_OFF,
            fid::CPU_ON_32,
            fid::CPU_ON_64,
            fid::AFFINITY_INFO_32,
            fid::AFFINITY_INFO_64,
            fid::MIGRATE_INFO_TYPE,
            fid::SYSTEM_OFF,
            fid::SYSTEM_RESET,
            fid::PSCI_FEATURES,
            fid::SMCCC_VERSION,
        ] {
            assert_eq!(
                features(implemented),
                PsciAction::Return(0),
                "{implemented:#x}"
            );
        }
        assert_eq!(features(fid::CPU_SUSPEND_32), PsciAction::Return(0));
        assert_eq!(features(fid::CPU_SUSPEND_64), PsciAction::Return(0));
        for missing in [
            fid::MIGRATE_32,
            fid::SYSTEM_SUSPEND_64,
            fid::SYSTEM_RESET2_64,
            fid::SMCCC_ARCH_FEATURES,
            fid::SMCCC_ARCH_WORKAROUND_1,
            0xc400_0000,
            0,
            u32::MAX,
        ] {
            assert_eq!(
                features(missing),
                ret(PsciStatus::NotSupported),
                "{missing:#x}"
            );
        }
        // The queried ID is 32 bits.
        assert_eq!(
            call(fid::PSCI_FEATURES, 1 << 32 | u64::from(fid::CPU_OFF), 0, 0),
            PsciAction::Return(0)
        );
    }

    #[test]
    fn smccc_arch_features() {
        let features = |f: u32| call(fid::SMCCC_ARCH_FEATURES, f.into(), 0, 0);
        assert_eq!(
            features(fid::SMCCC_ARCH_WORKAROUND_1),
            PsciAction::Return(0)
        );
        assert_eq!(
            features(fid::SMCCC_ARCH_WORKAROUND_2),
            PsciAction::Return(sign_extend(SMCCC_RET_NOT_REQUIRED))
        );
        assert_eq!(
            features(fid::SMCCC_ARCH_WORKAROUND_3),
            ret(PsciStatus::NotSupported)
        );
        assert_eq!(features(fid::SMCCC_VERSION), PsciAction::Return(0));
        assert_eq!(features(fid::SMCCC_ARCH_FEATURES), PsciAction::Return(0));
        assert_eq!(features(fid::PSCI_VERSION), ret(PsciStatus::NotSupported));
    }

    /// Firmware answers are relayed as given, including a PE-specific "1".
    #[test]
    fn firmware_answers_are_relayed() {
        struct Unaffected;
        impl PsciContext for Unaffected {
            fn caller(&self) -> VcpuId {
                VcpuId(0)
            }
            fn vcpu_count(&self) -> usize {
                1
            }
            fn power_state(&self, _: VcpuId) -> VcpuPower {
                VcpuPower::On
            }
            fn is_guest_ram(&self, _: GuestPhysAddr) -> bool {
                true
            }
            fn firmware_arch_features(&self, _: u32) -> i32 {
                1
            }
        }
        let call = |x0: u32, x1: u32| handle(&decode(x0.into(), x1.into(), 0, 0), &Unaffected);
        assert_eq!(
            call(fid::SMCCC_ARCH_FEATURES, fid::SMCCC_ARCH_WORKAROUND_3),
            PsciAction::Return(1)
        );
        assert_eq!(
            call(fid::SMCCC_ARCH_FEATURES, fid::SMCCC_ARCH_WORKAROUND_2),
            PsciAction::Return(1)
        );
        assert_eq!(
            call(fid::SMCCC_ARCH_WORKAROUND_3, 0),
            PsciAction::ForwardWorkaround(fid::SMCCC_ARCH_WORKAROUND_3)
        );
    }

    #[test]
    fn workarounds() {
        assert_eq!(
            call(fid::SMCCC_ARCH_WORKAROUND_1, 0, 0, 0),
            PsciAction::ForwardWorkaround(fid::SMCCC_ARCH_WORKAROUND_1)
        );
        assert_eq!(
            call(fid::SMCCC_ARCH_WORKAROUND_2, 0, 0, 0),
            ret(PsciStatus::NotSupported)
        );
        assert_eq!(
            call(fid::SMCCC_ARCH_WORKAROUND_3, 0, 0, 0),
            ret(PsciStatus::NotSupported)
        );
    }

    #[test]
    fn unknown_functions() {
        for f in [
            0u32,
            0x8400_0013,
            0xc200_0000,
            0x8400_001f,
            fid::SYSTEM_RESET2_64,
        ] {
            assert_eq!(call(f, 1, 2, 3), ret(PsciStatus::NotSupported), "{f:#x}");
        }
    }

    #[test]
    fn random_calls_never_panic() {
        let ctx = Fake::new();
        let mut x = 0x0123_4567_89ab_cdefu64;
        let mut step = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let fids = [
            fid::CPU_ON_32,
            fid::CPU_ON_64,
            fid::CPU_SUSPEND_32,
            fid::CPU_SUSPEND_64,
            fid::AFFINITY_INFO_32,
            fid::AFFINITY_INFO_64,
            fid::PSCI_FEATURES,
            fid::SMCCC_ARCH_FEATURES,
        ];
        for i in 0..50_000 {
            let x0 = if i % 2 == 0 {
                u64::from(fids[i / 2 % fids.len()])
            } else {
                step()
            };
            let action = handle(&decode(x0, step() % 8, step(), step()), &ctx);
            if let PsciAction::CpuOn { target, entry, .. } = action {
                assert_eq!(target, VcpuId(1));
                assert!(ctx.is_guest_ram(entry));
            }
        }
    }
}
