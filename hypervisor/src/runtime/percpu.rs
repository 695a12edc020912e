//! Per-physical-CPU state: its index, affinity and redistributor.

use crate::arch::gic::Redistributor;

/// One physical CPU.
pub struct PerCpu {
    /// Index in the device tree's CPU list (vCPU i of the VM is pinned to CPU i).
    pub index: usize,
    /// MPIDR affinity.
    pub aff: u64,
    /// Its redistributor.
    pub redist: Redistributor,
}
