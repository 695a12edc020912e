//! The VMM partition's calls, checked before the core acts on any of them.
//!
//! The VMM is less trusted than the core: a bug in a device model must not let it reach
//! memory that is not a served guest's, nor act on a VM or vCPU it does not serve. Every
//! argument is checked here, in one pure function, and a bad one gets its [`Status`] code.

use abi::layout::NR_SPIS;
use abi::vmm::{
    call, guest_window, Response, Status, CONSOLE_CHUNK, MAX_HOST_DEVICES, PANIC_CHUNK,
};
use abi::{GuestPhysAddr, IntId, VcpuId, VmId};

/// What the core knows of a VM the calling VMM serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServedVm {
    /// Its vCPU count.
    pub vcpus: usize,
}

/// The VMs the calling VMM serves.
pub trait Served {
    /// VM `vm`, if this VMM serves it.
    fn vm(&self, vm: VmId) -> Option<ServedVm>;
}

/// A checked call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VmmCall {
    /// ABI version.
    Version,
    /// Answer the current request; wait for the next.
    Wait(Response),
    /// Set a guest's SPI line.
    SetIrq {
        /// The VM.
        vm: VmId,
        /// An SPI.
        intid: IntId,
        /// The level.
        level: bool,
    },
    /// Map a VM's RAM at its window.
    MapGuest {
        /// The VM.
        vm: VmId,
        /// Its window (checked).
        window: GuestPhysAddr,
    },
    /// Unmap a VM's RAM.
    UnmapGuest {
        /// The VM.
        vm: VmId,
    },
    /// Console output for a VM.
    ConsoleWrite {
        /// The VM.
        vm: VmId,
        /// Bytes valid in `bytes` (at most [`CONSOLE_CHUNK`]).
        len: usize,
        /// The bytes, packed.
        bytes: [u64; 4],
    },
    /// Pause or resume a guest vCPU.
    VcpuCtl {
        /// The VM.
        vm: VmId,
        /// The vCPU.
        vcpu: VcpuId,
        /// Resume (true) or pause (false).
        run: bool,
    },
    /// Where the VMM's RAM is on the host (for the DMA of the devices it drives).
    HostInfo,
    /// The machine's time of day.
    Clock,
    /// Describe one of the machine's devices the VMM drives.
    HostDevice {
        /// Its index (checked against [`MAX_HOST_DEVICES`] only: the core knows how many).
        index: usize,
    },
    /// The VMM gives up.
    Panic {
        /// Bytes valid in `msg`.
        len: usize,
        /// The message, packed.
        msg: [u64; 6],
    },
}

fn vm_arg(x: u64, served: &dyn Served) -> Result<(VmId, ServedVm), Status> {
    let id = u16::try_from(x).map_err(|_| Status::InvalidVm)?;
    let vm = VmId(id);
    served.vm(vm).map(|s| (vm, s)).ok_or(Status::InvalidVm)
}

fn flag(x: u64) -> Result<bool, Status> {
    match x {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(Status::InvalidArgument),
    }
}

/// Checks the call in the VMM's x0-x7.
pub fn check(x: &[u64; 8], served: &dyn Served) -> Result<VmmCall, Status> {
    let Ok(fid) = u32::try_from(x[0]) else {
        return Err(Status::NotSupported);
    };
    match fid {
        call::VERSION => Ok(VmmCall::Version),
        call::WAIT => Ok(VmmCall::Wait(Response::from_regs([
            x[1], x[2], x[3], x[4], x[5], x[6],
        ]))),
        call::SET_IRQ => {
            let (vm, _) = vm_arg(x[1], served)?;
            let spis = IntId::SPI_BASE as u64..(IntId::SPI_BASE + NR_SPIS) as u64;
            if !spis.contains(&x[2]) {
                return Err(Status::InvalidArgument);
            }
            Ok(VmmCall::SetIrq {
                vm,
                intid: IntId(x[2] as u32),
                level: flag(x[3])?,
            })
        }
        call::MAP_GUEST => {
            let (vm, _) = vm_arg(x[1], served)?;
            let window = guest_window(vm).ok_or(Status::InvalidVm)?;
            if x[2] != window.0 {
                return Err(Status::InvalidAddress);
            }
            Ok(VmmCall::MapGuest { vm, window })
        }
        call::UNMAP_GUEST => Ok(VmmCall::UnmapGuest {
            vm: vm_arg(x[1], served)?.0,
        }),
        call::CONSOLE_WRITE => {
            let (vm, _) = vm_arg(x[1], served)?;
            let len = usize::try_from(x[2]).map_err(|_| Status::InvalidArgument)?;
            if len > CONSOLE_CHUNK {
                return Err(Status::InvalidArgument);
            }
            Ok(VmmCall::ConsoleWrite {
                vm,
                len,
                bytes: [x[3], x[4], x[5], x[6]],
            })
        }
        call::VCPU_CTL => {
            let (vm, info) = vm_arg(x[1], served)?;
            let vcpu = u16::try_from(x[2]).map_err(|_| Status::InvalidVcpu)?;
            if usize::from(vcpu) >= info.vcpus {
                return Err(Status::InvalidVcpu);
            }
            Ok(VmmCall::VcpuCtl {
                vm,
                vcpu: VcpuId(vcpu),
                run: flag(x[3])?,
            })
        }
        call::HOST_INFO => Ok(VmmCall::HostInfo),
        call::CLOCK => Ok(VmmCall::Clock),
        call::HOST_DEVICE => match usize::try_from(x[1]) {
            Ok(index) if index < MAX_HOST_DEVICES => Ok(VmmCall::HostDevice { index }),
            _ => Err(Status::InvalidArgument),
        },
        call::PANIC => Ok(VmmCall::Panic {
            len: usize::try_from(x[1])
                .unwrap_or(PANIC_CHUNK)
                .min(PANIC_CHUNK),
            msg: [x[2], x[3], x[4], x[5], x[6], x[7]],
        }),
        _ => Err(Status::NotSupported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves VM 0 (2 vCPUs) and VM 2 (1 vCPU); VM 1 exists but belongs to someone else.
    struct Two;
    impl Served for Two {
        fn vm(&self, vm: VmId) -> Option<ServedVm> {
            match vm.0 {
                0 => Some(ServedVm { vcpus: 2 }),
                2 => Some(ServedVm { vcpus: 1 }),
                _ => None,
            }
        }
    }

    fn call(fid: u32, args: &[u64]) -> Result<VmmCall, Status> {
        let mut x = [0u64; 8];
        x[0] = u64::from(fid);
        x[1..=args.len()].copy_from_slice(args);
        check(&x, &Two)
    }

    #[test]
    fn good_calls_pass() {
        assert_eq!(call(call::VERSION, &[]), Ok(VmmCall::Version));
        assert_eq!(
            call(call::SET_IRQ, &[0, 33, 1]),
            Ok(VmmCall::SetIrq {
                vm: VmId(0),
                intid: IntId(33),
                level: true
            })
        );
        let w = guest_window(VmId(2)).unwrap();
        assert_eq!(
            call(call::MAP_GUEST, &[2, w.0]),
            Ok(VmmCall::MapGuest {
                vm: VmId(2),
                window: w
            })
        );
        assert_eq!(
            call(call::VCPU_CTL, &[0, 1, 0]),
            Ok(VmmCall::VcpuCtl {
                vm: VmId(0),
                vcpu: VcpuId(1),
                run: false
            })
        );
        assert!(matches!(
            call(call::CONSOLE_WRITE, &[0, 32]),
            Ok(VmmCall::ConsoleWrite { len: 32, .. })
        ));
    }

    #[test]
    fn another_vms_memory_is_refused() {
        // VM 1 is not served: its RAM cannot be mapped, its lines not raised.
        let w1 = guest_window(VmId(1)).unwrap();
        assert_eq!(call(call::MAP_GUEST, &[1, w1.0]), Err(Status::InvalidVm));
        assert_eq!(call(call::SET_IRQ, &[1, 33, 1]), Err(Status::InvalidVm));
        assert_eq!(call(call::UNMAP_GUEST, &[1]), Err(Status::InvalidVm));
        assert_eq!(
            call(call::MAP_GUEST, &[u64::MAX, 0]),
            Err(Status::InvalidVm)
        );
        assert_eq!(
            call(call::MAP_GUEST, &[0x1_0000, 0]),
            Err(Status::InvalidVm),
            "id beyond u16"
        );
    }

    #[test]
    fn out_of_range_addresses_are_refused() {
        let w0 = guest_window(VmId(0)).unwrap();
        let w2 = guest_window(VmId(2)).unwrap();
        // A served VM's RAM, but mapped anywhere else than its window: over the VMM's own
        // RAM, over another window, or beyond the view.
        assert_eq!(
            call(call::MAP_GUEST, &[0, abi::vmm::VMM_RAM_BASE.0]),
            Err(Status::InvalidAddress)
        );
        assert_eq!(
            call(call::MAP_GUEST, &[0, w2.0]),
            Err(Status::InvalidAddress)
        );
        assert_eq!(
            call(call::MAP_GUEST, &[0, w0.0 + 0x1000]),
            Err(Status::InvalidAddress)
        );
        assert_eq!(
            call(call::MAP_GUEST, &[0, u64::MAX]),
            Err(Status::InvalidAddress)
        );
    }

    #[test]
    fn bad_vcpus_and_arguments_are_refused() {
        assert_eq!(call(call::VCPU_CTL, &[0, 2, 1]), Err(Status::InvalidVcpu));
        assert_eq!(call(call::VCPU_CTL, &[2, 1, 1]), Err(Status::InvalidVcpu));
        assert_eq!(
            call(call::VCPU_CTL, &[0, u64::MAX, 1]),
            Err(Status::InvalidVcpu)
        );
        assert_eq!(
            call(call::VCPU_CTL, &[0, 0, 2]),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            call(call::SET_IRQ, &[0, 27, 1]),
            Err(Status::InvalidArgument),
            "a PPI"
        );
        assert_eq!(
            call(call::SET_IRQ, &[0, 1020, 1]),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            call(call::SET_IRQ, &[0, 33, 7]),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            call(call::CONSOLE_WRITE, &[0, 33]),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            call(call::CONSOLE_WRITE, &[0, u64::MAX]),
            Err(Status::InvalidArgument)
        );
    }

    #[test]
    fn host_device_queries_are_bounded() {
        assert_eq!(call(call::HOST_INFO, &[]), Ok(VmmCall::HostInfo));
        assert_eq!(call(call::CLOCK, &[]), Ok(VmmCall::Clock));
        assert_eq!(
            call(call::HOST_DEVICE, &[1]),
            Ok(VmmCall::HostDevice { index: 1 })
        );
        assert_eq!(
            call(call::HOST_DEVICE, &[MAX_HOST_DEVICES as u64]),
            Err(Status::InvalidArgument)
        );
        assert_eq!(
            call(call::HOST_DEVICE, &[u64::MAX]),
            Err(Status::InvalidArgument)
        );
    }

    #[test]
    fn unknown_calls_are_not_supported_and_nothing_panics() {
        assert_eq!(call(0xC600_0042, &[]), Err(Status::NotSupported));
        assert_eq!(check(&[u64::MAX; 8], &Two), Err(Status::NotSupported));
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            let mut x = [0u64; 8];
            for r in x.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *r = if seed & 3 == 0 { seed & 0xff } else { seed };
            }
            x[0] = 0xC600_0000 | (x[0] & 7);
            if let Ok(VmmCall::Panic { len, .. }) = check(&x, &Two) {
                assert!(len <= PANIC_CHUNK);
            }
        }
    }
}
