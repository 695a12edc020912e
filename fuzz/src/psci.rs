//! `psci`: `hypervisor::psci::decode` + `handle` for any x0..x3, against a fake VM whose
//! size, caller, vCPU power states, RAM range and firmware answers all come from the input.
//!
//! Invariants: decoding reads only W0 and, for SMC32 function IDs, only the low 32 bits of
//! each argument; `handle` asks the context only about vCPUs below its count; every value it
//! returns is the call's defined answer or a valid PSCI status code; CPU_ON starts only an
//! Off vCPU other than the caller, named by a valid MPIDR, at an entry in guest RAM;
//! CPU_SUSPEND to a power-down state resumes only in guest RAM.

use std::cell::Cell;

use abi::layout::MAX_VCPUS;
use abi::{GuestPhysAddr, VcpuId};
use arbitrary::Unstructured;
use hypervisor::psci::{
    decode, fid, handle, PsciAction, PsciCall, PsciContext, PsciStatus, VcpuPower,
    CPU_SUSPEND_FEATURES, MIGRATE_INFO_TYPE_NOT_PRESENT, PSCI_VERSION_1_1, SMCCC_RET_NOT_REQUIRED,
    SMCCC_VERSION_1_1,
};

/// Function IDs worth hitting often.
const FIDS: [u32; 21] = [
    fid::PSCI_VERSION,
    fid::CPU_SUSPEND_32,
    fid::CPU_SUSPEND_64,
    fid::CPU_OFF,
    fid::CPU_ON_32,
    fid::CPU_ON_64,
    fid::AFFINITY_INFO_32,
    fid::AFFINITY_INFO_64,
    fid::MIGRATE_32,
    fid::MIGRATE_INFO_TYPE,
    fid::SYSTEM_OFF,
    fid::SYSTEM_RESET,
    fid::PSCI_FEATURES,
    fid::SYSTEM_SUSPEND_64,
    fid::SYSTEM_RESET2_64,
    fid::SMCCC_VERSION,
    fid::SMCCC_ARCH_FEATURES,
    fid::SMCCC_ARCH_WORKAROUND_1,
    fid::SMCCC_ARCH_WORKAROUND_2,
    fid::SMCCC_ARCH_WORKAROUND_3,
    0x8400_0007,
];

const ALL_STATUS: [PsciStatus; 10] = [
    PsciStatus::Success,
    PsciStatus::NotSupported,
    PsciStatus::InvalidParameters,
    PsciStatus::Denied,
    PsciStatus::AlreadyOn,
    PsciStatus::OnPending,
    PsciStatus::InternalFailure,
    PsciStatus::NotPresent,
    PsciStatus::Disabled,
    PsciStatus::InvalidAddress,
];

/// A VM as `handle` sees it.
struct FakeVm {
    caller: VcpuId,
    count: usize,
    power: Vec<VcpuPower>,
    ram: (u64, u64),
    firmware: [i32; 3],
    /// Contract violations seen in calls from `handle`.
    bad_query: Cell<Option<VcpuId>>,
}

impl FakeVm {
    fn ram_contains(&self, ipa: u64) -> bool {
        let (base, size) = self.ram;
        ipa >= base && ipa - base < size
    }

    fn power_of(&self, v: VcpuId) -> VcpuPower {
        self.power[v.index() % self.power.len()]
    }

    /// The firmware's SMCCC_ARCH_FEATURES answer for a workaround.
    fn fw(&self, f: u32) -> i32 {
        match f {
            fid::SMCCC_ARCH_WORKAROUND_1 => self.firmware[0],
            fid::SMCCC_ARCH_WORKAROUND_2 => self.firmware[1],
            fid::SMCCC_ARCH_WORKAROUND_3 => self.firmware[2],
            _ => PsciStatus::NotSupported as i32,
        }
    }
}

impl PsciContext for FakeVm {
    fn caller(&self) -> VcpuId {
        self.caller
    }
    fn vcpu_count(&self) -> usize {
        self.count
    }
    fn power_state(&self, v: VcpuId) -> VcpuPower {
        if v.index() >= self.count {
            self.bad_query.set(Some(v));
        }
        self.power_of(v)
    }
    fn is_guest_ram(&self, ipa: GuestPhysAddr) -> bool {
        self.ram_contains(ipa.raw())
    }
    fn firmware_arch_features(&self, f: u32) -> i32 {
        self.fw(f)
    }
}

fn w(x: u64) -> u64 {
    x & 0xffff_ffff
}

fn sx(code: i32) -> u64 {
    code as i64 as u64
}

fn status(s: PsciStatus) -> PsciAction {
    PsciAction::Return(s.to_x0())
}

/// The vCPU an MPIDR-shaped PSCI target names, by the QEMU virt numbering (Aff0 < 16,
/// Aff1 = cluster, nothing else set).
fn named_vcpu(target: u64, count: usize) -> Option<VcpuId> {
    let aff0 = target & 0xff;
    let aff1 = (target >> 8) & 0xff;
    if target & !0xffff != 0 || aff0 >= 16 {
        return None;
    }
    let index = aff1 * 16 + aff0;
    (index < count as u64).then_some(VcpuId(index as u16))
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(vm) = fake_vm(&mut u) else {
        return;
    };
    let Ok((x0, x1, x2, x3)) = registers(&mut u, &vm) else {
        return;
    };
    check(&vm, x0, x1, x2, x3);
}

fn fake_vm(u: &mut Unstructured) -> arbitrary::Result<FakeVm> {
    let count = match u.arbitrary::<u8>()? {
        0 => 0,
        c => usize::from(c) % MAX_VCPUS + 1,
    };
    let caller = VcpuId(u.int_in_range(0..=count.saturating_sub(1) as u16)?);
    let mut power = Vec::new();
    for _ in 0..count.min(32) {
        power.push(match u.arbitrary::<u8>()? % 3 {
            0 => VcpuPower::On,
            1 => VcpuPower::Off,
            _ => VcpuPower::OnPending,
        });
    }
    if power.is_empty() {
        power.push(VcpuPower::Off);
    }
    let ram = (u.arbitrary::<u64>()?, u.arbitrary::<u64>()?);
    let mut firmware = [0i32; 3];
    for f in &mut firmware {
        *f = match u.arbitrary::<u8>()? % 5 {
            0 => 0,
            1 => 1,
            2 => PsciStatus::NotSupported as i32,
            3 => SMCCC_RET_NOT_REQUIRED,
            _ => u.arbitrary()?,
        };
    }
    Ok(FakeVm {
        caller,
        count,
        power,
        ram,
        firmware,
        bad_query: Cell::new(None),
    })
}

fn registers(u: &mut Unstructured, vm: &FakeVm) -> arbitrary::Result<(u64, u64, u64, u64)> {
    let pick = u.arbitrary::<u8>()?;
    let high = u.arbitrary::<u32>()?;
    let x0 = if pick & 1 == 1 {
        u64::from(high) << 32 | u64::from(FIDS[usize::from(pick >> 1) % FIDS.len()])
    } else {
        u.arbitrary()?
    };
    let mut x1 = u.arbitrary::<u64>()?;
    if pick & 2 == 2 && vm.count > 0 {
        // An MPIDR that names a vCPU, sometimes with stray bits.
        let v = VcpuId((x1 as u16) % vm.count as u16);
        x1 = v.mpidr_affinity() | if pick & 4 == 4 { x1 & !0xffff } else { 0 };
    }
    let mut x2 = u.arbitrary::<u64>()?;
    if pick & 8 == 8 && vm.ram.1 > 0 {
        // An entry point in RAM, or at its edges.
        x2 = match pick >> 6 {
            0 => vm.ram.0,
            1 => vm.ram.0.wrapping_add(vm.ram.1),
            2 => vm.ram.0.wrapping_add(vm.ram.1 - 1),
            _ => vm.ram.0.wrapping_add(x2 % vm.ram.1),
        };
    }
    Ok((x0, x1, x2, u.arbitrary()?))
}

fn check(vm: &FakeVm, x0: u64, x1: u64, x2: u64, x3: u64) {
    let call = decode(x0, x1, x2, x3);
    let f = x0 as u32;
    assert_eq!(
        call,
        decode(u64::from(f), x1, x2, x3),
        "decode reads above W0"
    );
    if f & (1 << 30) == 0 {
        // SMC32/HVC32: the arguments are W registers.
        assert_eq!(
            call,
            decode(x0, w(x1), w(x2), w(x3)),
            "SMC32 reads above W1..W3"
        );
    }
    if vm.count == 0 {
        // A VM always has a vCPU; `caller` cannot be valid otherwise.
        return;
    }

    let action = handle(&call, vm);
    if let Some(v) = vm.bad_query.get() {
        panic!(
            "handle asked the power state of {v:?} of a {}-vCPU VM",
            vm.count
        );
    }

    let expected = match call {
        PsciCall::PsciVersion => PsciAction::Return(PSCI_VERSION_1_1),
        PsciCall::CpuSuspend {
            power_state,
            entry,
            context,
        } => {
            // Original format: StateID [15:0], StateType [16], PowerLevel [25:24].
            let standby = power_state & (1 << 16) == 0;
            if power_state & !0x0301_ffff != 0 {
                status(PsciStatus::InvalidParameters)
            } else if !standby && !vm.ram_contains(entry) {
                status(PsciStatus::InvalidAddress)
            } else {
                PsciAction::CpuSuspend {
                    standby,
                    entry: GuestPhysAddr(entry),
                    context,
                }
            }
        }
        PsciCall::CpuOff => PsciAction::CpuOff,
        PsciCall::CpuOn {
            target,
            entry,
            context,
        } => match named_vcpu(target, vm.count) {
            None => status(PsciStatus::InvalidParameters),
            Some(t) if t == vm.caller => status(PsciStatus::AlreadyOn),
            Some(t) => match vm.power_of(t) {
                VcpuPower::On => status(PsciStatus::AlreadyOn),
                VcpuPower::OnPending => status(PsciStatus::OnPending),
                VcpuPower::Off if !vm.ram_contains(entry) => status(PsciStatus::InvalidAddress),
                VcpuPower::Off => PsciAction::CpuOn {
                    target: t,
                    entry: GuestPhysAddr(entry),
                    context,
                },
            },
        },
        PsciCall::AffinityInfo {
            target,
            lowest_level,
        } => match (lowest_level, named_vcpu(target, vm.count)) {
            (0, Some(v)) => PsciAction::Return(match vm.power_of(v) {
                VcpuPower::On => 0,
                VcpuPower::Off => 1,
                VcpuPower::OnPending => 2,
            }),
            _ => status(PsciStatus::InvalidParameters),
        },
        PsciCall::MigrateInfoType => PsciAction::Return(MIGRATE_INFO_TYPE_NOT_PRESENT),
        PsciCall::SystemOff => PsciAction::SystemOff,
        PsciCall::SystemReset => PsciAction::SystemReset,
        PsciCall::PsciFeatures { fid: asked } => PsciAction::Return(match asked {
            fid::CPU_SUSPEND_32 | fid::CPU_SUSPEND_64 => sx(CPU_SUSPEND_FEATURES),
            fid::PSCI_VERSION
            | fid::CPU_OFF
            | fid::CPU_ON_32
            | fid::CPU_ON_64
            | fid::AFFINITY_INFO_32
            | fid::AFFINITY_INFO_64
            | fid::MIGRATE_INFO_TYPE
            | fid::SYSTEM_OFF
            | fid::SYSTEM_RESET
            | fid::PSCI_FEATURES
            | fid::SMCCC_VERSION => PsciStatus::Success.to_x0(),
            _ => PsciStatus::NotSupported.to_x0(),
        }),
        PsciCall::SmcccVersion => PsciAction::Return(SMCCC_VERSION_1_1),
        PsciCall::SmcccArchFeatures { fid: asked } => PsciAction::Return(match asked {
            fid::SMCCC_VERSION | fid::SMCCC_ARCH_FEATURES => 0,
            fid::SMCCC_ARCH_WORKAROUND_1 | fid::SMCCC_ARCH_WORKAROUND_3 => sx(vm.fw(asked)),
            fid::SMCCC_ARCH_WORKAROUND_2 => match vm.fw(asked) {
                0 => sx(SMCCC_RET_NOT_REQUIRED),
                other => sx(other),
            },
            _ => PsciStatus::NotSupported.to_x0(),
        }),
        PsciCall::ArchWorkaround { fid: which } => {
            if which != fid::SMCCC_ARCH_WORKAROUND_2 && vm.fw(which) >= 0 {
                PsciAction::ForwardWorkaround(which)
            } else {
                status(PsciStatus::NotSupported)
            }
        }
        PsciCall::Unknown { .. } => status(PsciStatus::NotSupported),
    };
    assert_eq!(action, expected, "{call:?} in a {}-vCPU VM", vm.count);

    // Whatever the oracle says, the properties the core relies on.
    match action {
        PsciAction::CpuOn { target, entry, .. } => {
            assert!(target.index() < vm.count);
            assert_ne!(target, vm.caller, "CPU_ON of the caller");
            assert_eq!(
                vm.power_of(target),
                VcpuPower::Off,
                "CPU_ON of a running vCPU"
            );
            assert!(vm.ram_contains(entry.raw()), "CPU_ON entry outside RAM");
        }
        PsciAction::CpuSuspend {
            standby: false,
            entry,
            ..
        } => assert!(vm.ram_contains(entry.raw())),
        PsciAction::Return(x) => {
            let passthrough = matches!(call, PsciCall::SmcccArchFeatures { .. });
            let defined = matches!(
                call,
                PsciCall::PsciVersion
                    | PsciCall::SmcccVersion
                    | PsciCall::MigrateInfoType
                    | PsciCall::AffinityInfo { .. }
            );
            assert!(
                passthrough || defined || ALL_STATUS.iter().any(|s| s.to_x0() == x),
                "{call:?} returned {x:#x}, not a PSCI status"
            );
        }
        _ => {}
    }
}
