//! Who the console's input goes to, and the hypervisor's monitor.
//!
//! Typed bytes go to one VM at a time (at boot, VM 0). `Ctrl-]` (0x1d) starts an escape: the
//! next key picks where input goes: `0`-`9` a VM by id, `m` the monitor; `Ctrl-]` again sends
//! one `Ctrl-]` to the VM. The monitor reads a line at a time:
//!
//! | command | what it does |
//! |---|---|
//! | `help` | lists the commands |
//! | `list` | each VM: id, name, state; each vCPU: its CPU and state |
//! | `stats` | each VM's exits by reason (mmio, hvc, sysreg, wfi, irq, timer, kick, other) |
//! | `stop VM` | stops a VM (VM: its id or name) |
//! | `start VM` | starts a stopped VM afresh, reloaded from its description |
//! | `reset VM` | resets a running VM (the same as the guest asking for it) |
//! | `poweroff` | powers the machine off |
//!
//! Commands only read counters and set flags: the work (a reload) is done by the CPUs that
//! run the VM, outside interrupt handling.

use super::console;
use super::stats::{Line, NR_COUNTERS};
use super::vm::{Power, Vm};
use super::vms;
use abi::VcpuId;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;

/// The escape key: Ctrl-].
pub const ESCAPE: u8 = 0x1d;
/// `FOCUS` value for the monitor.
const MONITOR: usize = usize::MAX;
/// Longest command line.
const LINE_MAX: usize = 64;

static FOCUS: AtomicUsize = AtomicUsize::new(0);

struct Input {
    escape: bool,
    line: [u8; LINE_MAX],
    len: usize,
}

static INPUT: Mutex<Input> = Mutex::new(Input {
    escape: false,
    line: [0; LINE_MAX],
    len: 0,
});

/// The VM typed input goes to (an id that may name no VM when the monitor has it).
pub fn focus_vm() -> usize {
    FOCUS.load(Ordering::Acquire)
}

/// Takes one typed byte: an escape, a monitor key, or a byte for the VM `to_vm` is given.
pub fn feed(b: u8, mut to_vm: impl FnMut(usize, u8)) {
    let mut input = INPUT.lock();
    if input.escape {
        input.escape = false;
        match b {
            ESCAPE => {
                let f = focus_vm();
                if f != MONITOR {
                    to_vm(f, b);
                }
            }
            b'm' | b'M' => {
                FOCUS.store(MONITOR, Ordering::Release);
                console::write_fmt(format_args!(
                    "rhyve: console: the monitor (`help` lists its commands; Ctrl-] then a VM id leaves)\nrhyve> "
                ));
            }
            b'0'..=b'9' => {
                let id = usize::from(b - b'0');
                match vms().get(id) {
                    Some(vm) => {
                        FOCUS.store(id, Ordering::Release);
                        console::write_fmt(format_args!(
                            "rhyve: console: VM {id} \"{}\" (Ctrl-] then m: the monitor)\n",
                            vm.spec.name
                        ));
                    }
                    None => console::write_fmt(format_args!("rhyve: console: no VM {id}\n")),
                }
            }
            _ => {}
        }
        return;
    }
    if b == ESCAPE {
        input.escape = true;
        return;
    }
    let f = focus_vm();
    if f != MONITOR {
        drop(input);
        to_vm(f, b);
        return;
    }
    match b {
        b'\r' | b'\n' => {
            console::echo(b"\n");
            let n = input.len;
            input.len = 0;
            let line = input.line;
            drop(input);
            let text = core::str::from_utf8(&line[..n]).unwrap_or("");
            command(text.trim());
            console::write_fmt(format_args!("rhyve> "));
        }
        // Backspace / DEL.
        0x08 | 0x7f => {
            if input.len > 0 {
                input.len -= 1;
                console::echo(b"\x08 \x08");
            }
        }
        0x20..=0x7e if input.len < LINE_MAX => {
            let n = input.len;
            input.line[n] = b;
            input.len += 1;
            console::echo(&[b]);
        }
        _ => {}
    }
}

/// The VM a command argument names: its id or its name.
fn find(arg: &str) -> Option<&'static Vm> {
    let all = vms();
    arg.parse::<usize>()
        .ok()
        .and_then(|i| all.get(i))
        .or_else(|| all.iter().find(|vm| vm.spec.name == arg))
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

/// Carries out one monitor command.
fn command(line: &str) {
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or("");
    let arg = words.next();
    let out = console::write_fmt;
    match (cmd, arg) {
        ("", _) => {}
        ("help", _) => out(format_args!(
            "commands: list | stats | stop VM | start VM | reset VM | poweroff  (VM: id or name)\n"
        )),
        ("list", _) => {
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
        ("stats", _) => {
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
        ("stop" | "start" | "reset", Some(a)) => match find(a) {
            None => out(format_args!("no VM \"{a}\"\n")),
            Some(vm) => match cmd {
                "stop" => {
                    super::stop_vm(vm);
                    out(format_args!(
                        "VM {} \"{}\": stopping\n",
                        vm.id.0, vm.spec.name
                    ));
                }
                "start" if vm.alive.load(Ordering::Acquire) => {
                    out(format_args!(
                        "VM {} is running: `reset` restarts it\n",
                        vm.id.0
                    ));
                }
                _ => {
                    super::vm_reset(vm, VcpuId(u16::MAX));
                    out(format_args!(
                        "VM {} \"{}\": starting\n",
                        vm.id.0, vm.spec.name
                    ));
                }
            },
        },
        ("poweroff", _) => {
            out(format_args!("powering off\n"));
            super::stats::print();
            super::power_off();
        }
        _ => out(format_args!("unknown command `{line}`: try `help`\n")),
    }
}
