//! Per-physical-CPU state: its index, affinity and redistributor, and the vCPU loaded on it.

use crate::arch::gic::Redistributor;
use abi::VcpuId;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};

/// [`PerCpu::loaded`] when no vCPU is loaded.
const NONE_LOADED: u32 = u32::MAX;

/// One physical CPU.
pub struct PerCpu {
    /// Index in the device tree's CPU list.
    pub index: usize,
    /// MPIDR affinity.
    pub aff: u64,
    /// Its redistributor.
    pub redist: Redistributor,
    /// A kick or the EL2 timer asked its scheduler to look again.
    pub resched: AtomicBool,
    /// The vCPU whose state is live in the CPU (VM index << 16 | vCPU), or [`NONE_LOADED`].
    /// Written by this CPU's scheduler only; read by its interrupt handling, which may run
    /// while the core works for another VM (a VMM upcall on that VM's behalf).
    loaded: AtomicU32,
}

impl PerCpu {
    /// A CPU with no vCPU loaded yet.
    pub fn new(index: usize, aff: u64, redist: Redistributor) -> Self {
        Self {
            index,
            aff,
            redist,
            resched: AtomicBool::new(false),
            loaded: AtomicU32::new(NONE_LOADED),
        }
    }

    /// The vCPU whose state is live in the CPU: (VM index, vCPU).
    pub fn loaded(&self) -> Option<(usize, VcpuId)> {
        unpack(self.loaded.load(Ordering::Acquire))
    }

    /// Records `(VM index, vCPU)` as loaded.
    pub fn set_loaded(&self, vm: usize, v: VcpuId) {
        self.loaded.store(pack(vm, v), Ordering::Release);
    }

    /// Takes the loaded vCPU's record, leaving none.
    pub fn take_loaded(&self) -> Option<(usize, VcpuId)> {
        unpack(self.loaded.swap(NONE_LOADED, Ordering::AcqRel))
    }
}

fn pack(vm: usize, v: VcpuId) -> u32 {
    // VM indexes are below `abi::vmm::MAX_VMS`, so the packed value is never NONE_LOADED.
    ((vm as u32) << u16::BITS) | u32::from(v.0)
}

fn unpack(raw: u32) -> Option<(usize, VcpuId)> {
    (raw != NONE_LOADED).then_some(((raw >> u16::BITS) as usize, VcpuId(raw as u16)))
}
