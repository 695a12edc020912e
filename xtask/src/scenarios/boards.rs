//! `board-<name>`: rhyve on a board QEMU models instead of QEMU virt, as a board's boot loader
//! would start it: the image as `-kernel` (at EL2), the boot bundle as `-initrd`, the board's
//! own device tree (QEMU's, or the board's real one from Debian's kernel package with `-dtb`).
//!
//! - `board-versal`: QEMU 7.2's `xlnx-versal-virt` (two Cortex-A72 in its tree; it takes only
//!   `-smp 4`, the other two being its Cortex-R5s), RAM at 0, GICv3, PL011. Its tree has a
//!   `/psci` here because QEMU adds one when it loads the kernel itself; a boot loader's tree
//!   has none, which `bsp::quirks` covers.
//! - `board-imx8mp`: `imx8mp-evk` (four Cortex-A53, GICv3, i.MX UART, a no-map DSP region in
//!   its RAM) with `freescale/imx8mp-evk.dtb`; QEMU 7.2 lacks the board, so QEMU 10 from
//!   Debian's bookworm-backports is fetched (`qemu10`). That QEMU (10.0.2) does not connect
//!   the board's GIC's virtual IRQ to the CPUs, so rhyve gets `rhyve.virq=hcr` there
//!   ([`imx8mp_virq_unwired`]).
//!
//! - `board-versal-net`: the same Versal, two VMs whose only network is rhyve's switch (the
//!   board has no network card for an uplink): `virtio-net-two`'s server and client, and its
//!   checks (the client fetches 1 MiB over HTTP from the server, same SHA-256), after the
//!   board's discovery lines. A board's VMs thus have a network between them; their disks
//!   would be the machine's (none here), so these VMs have none.
//!
//! The checks: what rhyve says it found (the console UART and where the tree named it, the
//! CPUs and the board, RAM, the reserved ranges, the GIC), in that order; that the VM's RAM
//! lies in the board's RAM and outside every reserved range; then the Debian guest's test
//! init on 2 vCPUs (`linux-smp`'s checks: CPU count, timer interrupts on each CPU, IPIs); and
//! that the VM has only the PL011 and the PL031 (no virtio row in its interrupts: the boards
//! have no virtio device for the VMM to back them with). The common checks add no
//! `rhyve: PANIC` and QEMU exiting 0 by itself. Not run with `--straight`
//! ([`super::BOARD_STRAIGHT`]).

use std::time::Duration;

use crate::boot::GuestBoot;
use crate::guest::GuestFiles;
use crate::qemu::{self, Capture, Input};
use crate::{dtcorpus, qemu10};

use super::common::vms::{self, linux_files, DeviceSet, VmDesc};
use super::{in_order, linux_smp, section, virtio_net, Scenario, VmsBoot};

/// The VM's name (one VM: its lines carry no prefix).
const VM: &str = "board";
/// Its vCPUs and RAM.
const VCPUS: u32 = 2;
const MEM_MIB: u64 = 512;
/// The interactive guest (no `rhyve.test`: init starts a shell).
const SHELL_CMDLINE: &str = "console=ttyAMA0 quiet";
/// Printed by tests/guest/init.sh just before it starts the shell.
const SHELL_BANNER: &str = "rhyve busybox guest:";
/// The test init's command line: the VM's PL011 is at QEMU virt's address on every board.
const CMDLINE: &str = "console=ttyAMA0 earlycon=pl011,0x9000000 rhyve.test=1";
/// The VM's devices: the UART and the RTC, which the VMM models without a device of the
/// machine. No virtio-rng: without RNDR (Cortex-A72, A53) and without the machine's own
/// virtio-rng it has no entropy to give, and the guest's reads would wait.
const DEVICES: DeviceSet = DeviceSet::PL011.with(DeviceSet::PL031);

/// RAM of each of `board-versal-net`'s two VMs (the board's 1 GiB holds two, rhyve and the
/// bundle).
const NET_MEM_MIB: u64 = 256;

/// What rhyve must say about the i.MX 8M Plus EVK.
const IMX8MP: &[(&str, &str)] = &[
    (
        "rhyve: console UART: i.MX UART at 0x30890000 (from the tree's stdout-path)",
        "the console: UART2, which stdout-path names",
    ),
    (
        "on 4 CPUs of \"NXP i.MX8MPlus EVK board\" (fsl,imx8mp-evk)",
        "the board and its four Cortex-A53",
    ),
    ("rhyve: RAM 0x40000000..0xa0000000", "RAM as QEMU sized it"),
    (
        "rhyve: reserved 0x92400000..0x94400000",
        "the DSP's no-map region",
    ),
    (
        "rhyve: GICv3 at 0x38800000, 1 redistributor region",
        "the GIC",
    ),
];

/// Where the board's QEMU comes from.
#[derive(Clone, Copy)]
enum Qemu {
    /// The system's (`qemu-system-aarch64`, Debian 12's 7.2).
    System,
    /// One that has the machine: the system's if it does, else QEMU 10 from bookworm-backports.
    WithMachine,
}

/// One board and what rhyve must report on it.
struct Board {
    /// `board-<name>`.
    name: &'static str,
    qemu: Qemu,
    /// `-M`.
    machine: &'static str,
    /// The board's tree in Debian's kernel package, for `-dtb`; `None`: QEMU's own.
    dtb: Option<&'static str>,
    /// `-smp` (the board's own count) and `-m`.
    smp: u32,
    mem_mib: u64,
    /// The `-serial` port of the UART the tree's `stdout-path` names.
    console_port: u32,
    /// rhyve's lines about the board, each a text its line must contain, in order.
    expect: &'static [(&'static str, &'static str)],
    /// What runs on the board.
    run: Run,
}

/// What a board scenario runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Run {
    /// One VM, the test init on 2 vCPUs (`linux-smp`'s checks).
    Smp,
    /// Two VMs on rhyve's switch (`virtio-net-two`'s).
    Net,
    /// One VM's shell, typed into through the board's console UART and rhyve's monitor.
    Console,
}

/// What rhyve must say about QEMU's Versal.
const VERSAL: &[(&str, &str)] = &[
    (
        "rhyve: console UART: PL011 at 0xff000000 (from the tree's stdout-path)",
        "the console: the PL011 stdout-path names",
    ),
    (
        "on 2 CPUs of \"Xilinx Versal Virtual development board\" (xlnx-versal-virt)",
        "the board and its two Cortex-A72",
    ),
    ("rhyve: RAM 0x0..0x40000000", "RAM from address 0"),
    (
        "rhyve: GICv3 at 0xf9000000, 1 redistributor region",
        "the GIC",
    ),
];

/// One `board-*` scenario per board.
pub fn scenarios() -> Vec<Box<dyn Scenario>> {
    vec![
        Box::new(Board {
            name: "versal",
            qemu: Qemu::System,
            machine: "xlnx-versal-virt",
            dtb: None,
            smp: 4,
            // RAM from 0: the image at 0x200000, the bundle at 128 MiB, the VMs above.
            mem_mib: 1024,
            console_port: 0,
            expect: VERSAL,
            run: Run::Smp,
        }),
        Box::new(Board {
            name: "versal-net",
            qemu: Qemu::System,
            machine: "xlnx-versal-virt",
            dtb: None,
            smp: 4,
            mem_mib: 1024,
            console_port: 0,
            expect: VERSAL,
            run: Run::Net,
        }),
        Box::new(Board {
            name: "imx8mp",
            qemu: Qemu::WithMachine,
            machine: "imx8mp-evk",
            dtb: Some("freescale/imx8mp-evk.dtb"),
            smp: 4,
            // RAM 0x4000_0000..0xa000_0000: carving top-down from there would cross the DSP's
            // no-map range at 0x9240_0000 if discovery missed it.
            mem_mib: 1536,
            // UART2, the EVK's console, is QEMU's second serial port.
            console_port: 1,
            expect: IMX8MP,
            run: Run::Smp,
        }),
        Box::new(Board {
            name: "imx8mp-console",
            qemu: Qemu::WithMachine,
            machine: "imx8mp-evk",
            dtb: Some("freescale/imx8mp-evk.dtb"),
            smp: 4,
            // RAM 0x4000_0000..0xa000_0000: carving top-down from there would cross the DSP's
            // no-map range at 0x9240_0000 if discovery missed it.
            mem_mib: 1536,
            // UART2, the EVK's console, is QEMU's second serial port.
            console_port: 1,
            expect: IMX8MP,
            run: Run::Console,
        }),
    ]
}

impl Board {
    /// The VM: the Debian guest with the test init, on 2 vCPUs, with the UART and the RTC.
    fn vm(&self) -> VmDesc {
        VmDesc {
            vcpus: VCPUS,
            devices: DEVICES,
            ..vms::linux(VM, MEM_MIB, CMDLINE)
        }
    }
}

impl Scenario for Board {
    fn name(&self) -> String {
        format!("board-{}", self.name)
    }

    fn boot(&self, guest: &GuestFiles) -> GuestBoot {
        GuestBoot::linux(guest, CMDLINE, VCPUS, MEM_MIB)
    }

    fn vms(&self, guest: &GuestFiles) -> Option<VmsBoot> {
        let config = match self.run {
            Run::Smp => vms::config(&[self.vm()]),
            Run::Net => vms::config(&virtio_net::two_guests(NET_MEM_MIB)),
            Run::Console => vms::config(&[VmDesc {
                vcpus: 1,
                devices: DEVICES,
                ..vms::linux(VM, MEM_MIB, SHELL_CMDLINE)
            }]),
        };
        Some(VmsBoot {
            config,
            files: linux_files(guest),
            smp: self.smp,
            mem_mib: self.mem_mib,
        })
    }

    fn board(&self) -> Option<Result<qemu::Board, String>> {
        let board = || -> crate::error::Result<qemu::Board> {
            let (binary, data_dir, version) = match self.qemu {
                Qemu::System => (qemu::binary()?, None, None),
                Qemu::WithMachine => {
                    let q = qemu10::with_machine(self.machine)?;
                    println!(
                        "xtask: {}: {} ({})",
                        self.name(),
                        q.binary.display(),
                        q.version
                    );
                    (q.binary, q.data_dir, Some(q.version))
                }
            };
            let unwired =
                self.machine == "imx8mp-evk" && version.as_deref().is_some_and(imx8mp_virq_unwired);
            Ok(qemu::Board {
                qemu: binary,
                data_dir,
                machine: self.machine.into(),
                dtb: self.dtb.map(dtcorpus::board_tree).transpose()?,
                smp: self.smp,
                console_port: self.console_port,
                hypervisor_args: unwired.then(|| "rhyve.virq=hcr".to_string()),
            })
        };
        Some(board().map_err(|e| format!("the board could not be had: {e}")))
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(300)
    }

    fn inputs(&self) -> Vec<Input> {
        if self.run != Run::Console {
            return Vec::new();
        }
        vec![
            Input {
                after: SHELL_BANNER,
                delay: Duration::from_secs(2),
                send: "echo typed-$((6*7))\n",
            },
            // The monitor: Ctrl-] m, then a command; Ctrl-] 0 back to the VM.
            Input {
                after: "typed-42",
                delay: Duration::from_millis(500),
                send: "\x1dm",
            },
            Input {
                after: "rhyve: console: the monitor",
                delay: Duration::from_millis(500),
                send: "list\n",
            },
            Input {
                after: "vCPU 0 on CPU",
                delay: Duration::from_millis(500),
                send: "\x1d0",
            },
            Input {
                after: "rhyve: console: VM 0",
                delay: Duration::from_millis(500),
                send: "poweroff -f\n",
            },
        ]
    }

    fn check(&self, console: &Capture) -> Vec<String> {
        let mut failures = in_order(console, self.expect);
        match self.run {
            Run::Smp => return check(self.expect, console),
            Run::Net => failures.extend(virtio_net::check_two_guests(console)),
            Run::Console => {
                // The answer line alone: the echoed command shows `$((6*7))`, not 42.
                if !console.lines.iter().any(|l| l.text.trim() == "typed-42") {
                    failures.push(
                        "the guest's shell never answered `echo typed-$((6*7))` typed on the board's console".into(),
                    );
                }
                if !console
                    .lines
                    .iter()
                    .any(|l| l.text.contains(&format!("VM 0 \"{VM}\": running")))
                {
                    failures
                        .push("the monitor's `list` never answered on the board's console".into());
                }
                if console.find("rhyve: VM 0 stopped").is_none() {
                    failures.push("the typed `poweroff -f` did not stop the VM".into());
                }
            }
        }
        failures
    }
}

/// Whether the QEMU of version line `version` has the imx8mp-evk whose GIC's virtual IRQ and
/// FIQ outputs reach no CPU: 10.0.0 to 10.0.2 (the board came in 10.0; QEMU's commit
/// "hw/arm/fsl-imx8mp: Wire VIRQ and VFIQ" is in 10.0.3 and 10.1). There no guest under a
/// hypervisor ever takes an interrupt from its list registers, so rhyve is told to raise
/// them with HCR_EL2.VI (`rhyve.virq=hcr`).
fn imx8mp_virq_unwired(version: &str) -> bool {
    let Some(v) = version
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
    else {
        return false;
    };
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some(Some(10)), Some(Some(0)), Some(Some(0..=2)))
    )
}

/// The checks on a board's console, given rhyve's expected lines about the board.
fn check(expect: &[(&str, &str)], console: &Capture) -> Vec<String> {
    let mut failures = in_order(console, expect);
    failures.extend(check_vm_ram(console));
    failures.extend(linux_smp::check(VCPUS as usize, console));
    // Without the dump, linux_smp's checks already said so.
    if let Some(rows) = section(console, "RHYVE-IRQ-BEGIN 1", "RHYVE-IRQ-END 1") {
        if let Some(r) = rows.iter().find(|r| r.contains("virtio")) {
            failures.push(format!(
                "the VM has a virtio device (`{}`): it should have only the PL011 and the PL031",
                r.trim()
            ));
        }
        if !rows.iter().any(|r| r.contains("uart-pl011")) {
            failures.push("the guest's interrupts have no uart-pl011 row".into());
        }
    }
    failures
}

/// A `0x…..0x…` range on a `rhyve: <what> ` line.
fn parse_range(text: &str, what: &str) -> Option<(u64, u64)> {
    let rest = text.strip_prefix(&format!("rhyve: {what} "))?;
    let (a, b) = rest.split_once("..")?;
    let hex = |s: &str| u64::from_str_radix(s.trim().strip_prefix("0x")?, 16).ok();
    Some((hex(a)?, hex(b.split_whitespace().next()?)?))
}

/// The VM's RAM (`rhyve: VM 0 "board": ..., 512 MiB RAM at host 0x…`) lies in one of the
/// board's RAM ranges and meets none of its reserved ones.
fn check_vm_ram(console: &Capture) -> Vec<String> {
    let ranges = |what: &str| -> Vec<(u64, u64)> {
        console
            .lines
            .iter()
            .filter_map(|l| parse_range(&l.text, what))
            .collect()
    };
    let (ram, reserved) = (ranges("RAM"), ranges("reserved"));
    let marker = format!("rhyve: VM 0 \"{VM}\": {VCPUS} vCPUs");
    let Some(line) = console.find(&marker) else {
        return vec![format!("no `{marker}` line: rhyve did not build the VM")];
    };
    let host = line
        .text
        .split_once("RAM at host 0x")
        .and_then(|(_, r)| r.split(|c: char| !c.is_ascii_hexdigit()).next())
        .and_then(|h| u64::from_str_radix(h, 16).ok());
    let Some(start) = host else {
        return vec![format!("`{}` names no host address", line.text.trim())];
    };
    let end = start + (MEM_MIB << 20);
    let mut failures = Vec::new();
    if !ram.iter().any(|&(s, e)| s <= start && end <= e) {
        failures.push(format!(
            "the VM's RAM {start:#x}..{end:#x} is not inside the board's RAM {ram:x?}"
        ));
    }
    for &(s, e) in &reserved {
        if start < e && s < end {
            failures.push(format!(
                "the VM's RAM {start:#x}..{end:#x} overlaps the reserved range {s:#x}..{e:#x}"
            ));
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPECT: &[(&str, &str)] = &[
        ("rhyve: console UART: i.MX UART at 0x30890000", "console"),
        ("on 4 CPUs of", "CPUs"),
        ("rhyve: RAM 0x40000000..0xa0000000", "RAM"),
        ("rhyve: reserved 0x92400000..0x94400000", "reserved"),
        ("rhyve: GICv3 at 0x38800000", "GIC"),
    ];

    fn good() -> String {
        let dump = |n: u32, t: u64| {
            format!(
                "RHYVE-IRQ-BEGIN {n}\n           CPU0       CPU1\n 11: {t} {t} GICv3 27 Level arch_timer\n\
                 13: 0 0 GICv3 33 Level uart-pl011\n 14: 0 0 GICv3 34 Level rtc-pl031\n\
                 IPI0: {t} 5 Rescheduling interrupts\nErr: 0\nRHYVE-IRQ-END {n}\n"
            )
        };
        format!(
            "rhyve: console UART: i.MX UART at 0x30890000 (from the tree's stdout-path)\n\
             rhyve: rhyve 0.1.0 starting at 0x40200000 on 4 CPUs of \"NXP i.MX8MPlus EVK board\" (fsl,imx8mp-evk)\n\
             rhyve: RAM 0x40000000..0xa0000000\nrhyve: reserved 0x92400000..0x94400000\n\
             rhyve: GICv3 at 0x38800000, 1 redistributor region(s); maintenance INTID 25\n\
             rhyve: VM 0 \"board\": 2 vCPUs on CPUs [0, 1], 512 MiB RAM at host 0x60000000, entry 0x40200000\n\
             RHYVE-INIT-START\nRHYVE-NPROC 2\n{}{}RHYVE-TEST-DONE\n",
            dump(1, 10),
            dump(2, 20)
        )
    }

    fn run(text: &str) -> Vec<String> {
        check(EXPECT, &Capture::from_text(text))
    }

    #[test]
    fn a_good_run_passes() {
        assert_eq!(run(&good()), Vec::<String>::new());
    }

    #[test]
    fn a_wrong_discovery_line_fails() {
        let f = run(&good().replace("at 0x30890000", "at 0x30860000"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("no `rhyve: console UART: i.MX UART at 0x30890000`"));
        // The reserved range missing: discovery did not see the DSP's region.
        let f = run(&good().replace("rhyve: reserved 0x92400000..0x94400000\n", ""));
        assert!(f[0].contains("reserved"), "{f:?}");
    }

    #[test]
    fn vm_ram_over_a_reserved_range_or_outside_ram_fails() {
        let f = run(&good().replace("host 0x60000000", "host 0x80000000"));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("overlaps the reserved range 0x92400000..0x94400000"));
        let f = run(&good().replace("host 0x60000000", "host 0x9f000000"));
        assert!(f[0].contains("is not inside the board's RAM"), "{f:?}");
    }

    #[test]
    fn a_virtio_device_or_a_missing_guest_fails() {
        let f = run(&good().replacen(
            " 14: 0 0 GICv3 34 Level rtc-pl031\n",
            " 14: 0 0 GICv3 34 Level rtc-pl031\n 15: 1 0 GICv3 51 Edge virtio3\n",
            1,
        ));
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0].contains("virtio3"), "{f:?}");
        let f = run(&good().replace("RHYVE-NPROC 2", "RHYVE-NPROC 1"));
        assert!(f.iter().any(|f| f.contains("sees 1 CPUs")), "{f:?}");
    }

    #[test]
    fn only_qemu_10_0_0_to_10_0_2_needs_the_virq_workaround() {
        let v = |s: &str| imx8mp_virq_unwired(&format!("QEMU emulator version {s}"));
        assert!(v("10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)"));
        assert!(v("10.0.0"));
        assert!(!v("10.0.3"));
        assert!(!v("10.1.0 (Debian 1:10.1.0+ds-5)"));
        assert!(!v("7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)"));
        assert!(!imx8mp_virq_unwired("garbage"));
    }

    #[test]
    fn the_vm_fits_the_machine() {
        for s in scenarios() {
            let guest = GuestFiles {
                kernel: "Image".into(),
                initrd: "initramfs".into(),
            };
            let b = s.vms(&guest).expect("a board boots a VM description");
            assert!(
                MEM_MIB + qemu::HYPERVISOR_MEM_MIB <= b.mem_mib,
                "{}",
                s.name()
            );
            assert!(VCPUS <= b.smp);
        }
    }
}
