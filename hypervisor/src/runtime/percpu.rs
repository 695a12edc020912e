//! Per-physical-CPU state: its index, affinity and redistributor.

use crate::arch::gic::Redistributor;
use core::sync::atomic::AtomicBool;

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
}
