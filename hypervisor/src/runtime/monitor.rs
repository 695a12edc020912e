//! The monitor's actions on the machine: [`hypervisor::monitor`] says what each typed byte
//! and each command line mean; this carries them out.
//!
//! Commands only read counters and set flags: the work (a reload) is done by the CPUs that
//! run the VM, outside interrupt handling.

use super::input::{self, MONITOR};
use super::machine::vms;
use super::stats::{Line, NR_COUNTERS};
use super::vm::{Power, Vm};
use super::{console, lifecycle, stats};
use abi::VcpuId;
use core::sync::atomic::Ordering;
use hypervisor::monitor::{self as keys, Action, Command, Focus, Keys};
use spin::Mutex;

static KEYS: Mutex<Keys> = Mutex::new(Keys::new());

/// The console UART received something (its interrupt handler): escapes and monitor keys to
/// the monitor, the rest into the input ring of the VM that has the console; the VM gets them
/// when the VMM partition next delivers input (never from here: this may run inside a VMM
/// upcall).
pub fn uart_rx() {
    let room = input::room(input::focus_vm());
    // Taken off the UART first: the monitor prints, which needs the console's lock.
    let mut typed = [0u8; 256];
    let mut n = 0;
    console::drain_rx(room.min(typed.len()), |b| {
        typed[n] = b;
        n += 1;
    });
    let mut full = false;
    for &b in &typed[..n] {
        feed(b, |vm, b| full |= input::push(vm, b));
    }
    if full {
        // Leave the rest in the UART and stop its interrupt until the guest reads.
        console::set_rx_interrupt(false);
    }
}

/// Takes one typed byte: an escape, a monitor key, or a byte for the VM `to_vm` is given.
pub fn feed(b: u8, mut to_vm: impl FnMut(usize, u8)) {
    let action = KEYS.lock().feed(b, vms().len());
    match action {
        Action::None => {}
        Action::ToVm(vm, b) => to_vm(vm, b),
        Action::Focused(Focus::Monitor) => {
            input::set_focus(MONITOR);
            console::write_fmt(format_args!(
                "rhyve: console: the monitor (`help` lists its commands; Ctrl-] then a VM id leaves)\nrhyve> "
            ));
        }
        Action::Focused(Focus::Vm(id)) => {
            input::set_focus(id);
            if let Some(vm) = vms().get(id) {
                console::write_fmt(format_args!(
                    "rhyve: console: VM {id} \"{}\" (Ctrl-] then m: the monitor)\n",
                    vm.spec.name
                ));
            }
        }
        Action::NoSuchVm(id) => console::write_fmt(format_args!("rhyve: console: no VM {id}\n")),
        Action::Echo(b) => console::echo(&[b]),
        Action::Erase => console::echo(b"\x08 \x08"),
        Action::Entered(line) => {
            console::echo(b"\n");
            command(line.text());
            console::write_fmt(format_args!("rhyve> "));
        }
    }
}

/// The VM a command argument names: its id or its name.
fn find(arg: &str) -> Option<&'static Vm> {
    let all = vms();
    keys::find_vm(arg, all.iter().map(|vm| vm.spec.name.as_str())).and_then(|i| all.get(i))
}

fn vm_state(vm: &Vm) -> &'static str {
    if vm.resetting.load(Ordering::Acquire) {
        "starting"
    } else if vm.alive.load(Ordering::Acquire) {
        "running"
    } else if vm.started.load(Ordering::Acquire) {
        "stopped"
    } else {
        "not started"
    }
}

fn vcpu_state(vm: &Vm, v: VcpuId) -> &'static str {
    let Some(slot) = vm.vcpu(v) else { return "?" };
    match slot.power() {
        Power::Off => "off",
        Power::OnPending => "starting",
        Power::On if slot.paused() => "paused",
        Power::On if slot.blocked.load(Ordering::Acquire) => "waiting",
        Power::On => "running",
    }
}

/// Runs `f` on the VM `arg` names, or says there is none.
fn with_vm(arg: &str, f: impl FnOnce(&'static Vm)) {
    match find(arg) {
        Some(vm) => f(vm),
        None => console::write_fmt(format_args!("no VM \"{arg}\"\n")),
    }
}

/// Starts `vm` afresh (a reset, or a start of a stopped VM).
fn restart(vm: &Vm) {
    lifecycle::vm_reset(vm, VcpuId(u16::MAX));
    console::write_fmt(format_args!(
        "VM {} \"{}\": starting\n",
        vm.id.0, vm.spec.name
    ));
}

/// Carries out one monitor command.
fn command(line: &str) {
    let out = console::write_fmt;
    match keys::parse(line) {
        Command::Empty => {}
        Command::Help => out(format_args!(
            "commands: list | stats | stop VM | start VM | reset VM | poweroff  (VM: id or name)\n"
        )),
        Command::List => {
            for vm in vms() {
                out(format_args!(
                    "VM {} \"{}\": {}, {} MiB, {} vCPUs\n",
                    vm.id.0,
                    vm.spec.name,
                    vm_state(vm),
                    vm.spec.mem_size >> 20,
                    vm.vcpus.len()
                ));
                for (i, slot) in vm.vcpus.iter().enumerate() {
                    out(format_args!(
                        "  vCPU {i} on CPU {}: {}\n",
                        slot.pcpu,
                        vcpu_state(vm, VcpuId(i as u16))
                    ));
                }
            }
        }
        Command::Stats => {
            for vm in vms() {
                let mut sum = [0u64; NR_COUNTERS];
                for slot in vm.vcpus.iter() {
                    slot.stats.add_to(&mut sum);
                }
                out(format_args!(
                    "VM {} \"{}\" exits: {}\n",
                    vm.id.0,
                    vm.spec.name,
                    Line(&sum)
                ));
            }
        }
        Command::Stop(a) => with_vm(a, |vm| {
            lifecycle::stop_vm(vm);
            out(format_args!(
                "VM {} \"{}\": stopping\n",
                vm.id.0, vm.spec.name
            ));
        }),
        Command::Start(a) => with_vm(a, |vm| {
            if vm.alive.load(Ordering::Acquire) {
                out(format_args!(
                    "VM {} is running: `reset` restarts it\n",
                    vm.id.0
                ));
            } else {
                restart(vm);
            }
        }),
        Command::Reset(a) => with_vm(a, restart),
        Command::PowerOff => {
            out(format_args!("powering off\n"));
            stats::print();
            lifecycle::power_off();
        }
        Command::Unknown => out(format_args!("unknown command `{line}`: try `help`\n")),
    }
}
