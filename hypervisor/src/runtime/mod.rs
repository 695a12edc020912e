//! The core's life on the machine, as the image runs it.
//!
//! | module | what |
//! |---|---|
//! | `efi` | the image started by UEFI: the bundle read, boot services left, then `boot` |
//! | `boot` | the primary CPU's start, the other CPUs', and every CPU's loop |
//! | `build` | the VMs built from the boot bundle |
//! | `lifecycle` | a VM stopped, reset, restarted; the machine powered off |
//! | `machine` | what every CPU knows of the machine and its VMs (set at boot) |
//! | `vcpu` | running a vCPU: the exit loop and each exit's answer |
//! | `sched` | which of a CPU's vCPUs runs (the policy is the library's) |
//! | `irq` | physical interrupts and the list registers: a leaf the others call |
//! | `input` | typed bytes on their way to a VM, and where input goes |
//! | `monitor` | the console's escape key and the monitor's commands |
//! | `partition` | the VMM partition: its upcalls and what it is handed |
//! | `console` | the machine's UART, the log, the VMs' output kept apart |
//! | `memory`, `percpu`, `vm`, `stats`, `ratelimit`, `fault` | RAM, per-CPU records, VM state, counters, warnings, panics |
//!
//! Modules depend on each other in one direction only (`cargo xtask test` checks it): a
//! lower module reaches a higher one only through a function it was handed at boot (the
//! interrupt handlers, the VMM's frame delivery).
//!
//! Lock order across the runtime: a vCPU's context -> a CPU's VMM vCPU -> partition stage 2
//! -> console input rings -> vGIC locks -> console.

pub mod boot;
pub mod build;
pub mod console;
pub mod efi;
pub mod fault;
pub mod input;
pub mod irq;
pub mod lifecycle;
pub mod machine;
pub mod memory;
pub mod monitor;
pub mod partition;
pub mod percpu;
pub mod ratelimit;
pub mod sched;
pub mod stats;
pub mod vcpu;
pub mod vm;
