//! What every CPU knows of the machine once the primary CPU described it: the CPUs, the GIC,
//! the firmware, and the VMs. Set once at boot, read everywhere after; depends on nothing else
//! of the runtime but the VM type.

use super::vm::Vm;
use crate::arch::cpu::BootArgs;
use crate::arch::firmware::Conduit;
use crate::arch::gic::Distributor;
use crate::psci;
use alloc::vec::Vec;
use hypervisor::platform::{self, HostIntids, MAX_CPUS, MAX_GICR_REGIONS};
use spin::Once;

/// What every CPU needs to know about the machine after boot.
pub struct Machine {
    /// MPIDR affinity of each CPU, in device-tree order.
    pub cpu_affs: [u64; MAX_CPUS],
    /// Number of CPUs.
    pub nr_cpus: usize,
    /// The firmware conduit.
    pub conduit: Option<Conduit>,
    /// The console UART's interrupt.
    pub uart_intid: Option<u32>,
    /// The distributor.
    pub gicd: Distributor,
    /// Redistributor regions.
    pub gicr: platform::List<(u64, u64), MAX_GICR_REGIONS>,
    /// The distance between redistributors, if the tree says (else GICR_TYPER.VLPIS does).
    pub gicr_stride: Option<u64>,
    /// The machine's own GIC maintenance and timer interrupts, as its tree numbers them.
    pub intids: HostIntids,
    /// Translation registers for secondaries.
    pub boot_args: BootArgs,
    /// The firmware's SMCCC_ARCH_FEATURES answers, by workaround function.
    pub arch_features: [(u32, i32); 3],
}

impl Machine {
    /// The firmware's SMCCC_ARCH_FEATURES answer for a workaround function, probed at boot.
    pub fn arch_features(&self, fid: u32) -> i32 {
        self.arch_features
            .iter()
            .find(|(f, _)| *f == fid)
            .map_or(psci::PsciStatus::NotSupported as i32, |(_, r)| *r)
    }
}

/// The machine.
static MACHINE: Once<Machine> = Once::new();
/// The VMs, by id.
static VMS: Once<Vec<Vm>> = Once::new();

/// Records the machine's description (the primary CPU, once, before any secondary starts).
pub fn describe_machine(machine: Machine) -> &'static Machine {
    MACHINE.call_once(|| machine)
}

/// The machine description (set before any secondary CPU starts).
pub fn machine() -> &'static Machine {
    MACHINE
        .get()
        .expect("machine described before secondaries start")
}

/// Records the VMs (the primary CPU, once, after building them).
pub fn set_vms(vms: Vec<Vm>) -> &'static [Vm] {
    VMS.call_once(|| vms)
}

/// The VMs, by id (empty until they are built).
pub fn vms() -> &'static [Vm] {
    VMS.get().map_or(&[], |v| v.as_slice())
}
