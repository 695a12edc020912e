//! `vgic_mmio`: the virtual GICv3 driven by an arbitrary sequence of what guests and devices
//! do to it: MMIO reads and writes of any offset, size and value from any vCPU (in range or
//! not), SPI line changes, mapped PPI injections, ICC_SGI1R_EL1 writes, and vCPUs entering
//! (`flush`) and leaving (`sync`) with fake 4-entry list registers whose guest acknowledges
//! and completes interrupts as the input says.
//!
//! Invariants, after every step: nothing panics; a running vCPU's list registers hold each
//! interrupt at most once, and no SPI is in the list registers of two running vCPUs; a valid
//! LR's vINTID is below 32 + NR_SPIS; an HW = 1 LR is a PPI whose pINTID is its vINTID; only
//! LRs that exist are touched; kicks name only vCPUs of the VM.

use abi::layout::{GICD_BASE, GICD_SIZE, GICR_BASE, GICR_STRIDE, MAX_VCPUS, NR_SPIS};
use abi::{GuestPhysAddr, IntId, VcpuId};
use arbitrary::{Arbitrary, Unstructured};
use hypervisor::vgic::{Kick, ListRegs, Vgic};

/// List registers per vCPU, as on Cortex-A cores.
pub const NR_LRS: usize = 4;
/// Most operations in one input.
const MAX_OPS: usize = 512;

const INVALID: u64 = 0;
const PENDING: u64 = 1;
const ACTIVE: u64 = 2;
const PENDING_ACTIVE: u64 = 3;

// `ICH_LR<n>_EL2` (IHI 0069 12.4.10), as the fake hardware reads it.
fn lr_state(lr: u64) -> u64 {
    lr >> 62
}
fn lr_vintid(lr: u64) -> u64 {
    lr & 0xffff_ffff
}
fn lr_pintid(lr: u64) -> u64 {
    (lr >> 32) & 0x1fff
}
fn lr_hw(lr: u64) -> bool {
    lr & (1 << 61) != 0
}
fn lr_eoi(lr: u64) -> bool {
    lr & (1 << 41) != 0
}
fn with_state(lr: u64, state: u64) -> u64 {
    (lr & !(0b11 << 62)) | state << 62
}

/// A vCPU's list registers, behaving as ICH_LR / ICH_ELRSR / ICH_EISR do (the same model as
/// the vGIC unit tests' `FakeListRegs`).
#[derive(Debug, Default)]
pub struct FakeListRegs {
    pub lrs: [u64; NR_LRS],
    pub underflow: bool,
}

impl FakeListRegs {
    /// The guest acknowledges LR n (reads ICC_IAR1_EL1): pending -> active.
    fn ack(&mut self, n: usize) {
        if lr_state(self.lrs[n]) == PENDING {
            self.lrs[n] = with_state(self.lrs[n], ACTIVE);
        }
    }

    /// The guest acknowledges (if pending) and deactivates LR n (EOImode = 0): pending ->
    /// invalid, active -> invalid, pending+active -> pending.
    fn complete(&mut self, n: usize) {
        let next = match lr_state(self.lrs[n]) {
            INVALID => return,
            PENDING_ACTIVE => PENDING,
            _ => INVALID,
        };
        self.lrs[n] = with_state(self.lrs[n], next);
    }
}

impl ListRegs for FakeListRegs {
    fn count(&self) -> usize {
        NR_LRS
    }

    fn read(&self, n: usize) -> u64 {
        assert!(n < NR_LRS, "read of LR {n} of {NR_LRS}");
        self.lrs[n]
    }

    fn write(&mut self, n: usize, value: u64) {
        assert!(n < NR_LRS, "write of LR {n} of {NR_LRS}");
        self.lrs[n] = value;
    }

    /// State 0 and (HW = 1 or EOI = 0) (IHI 0069 12.4.6).
    fn empty_mask(&self) -> u64 {
        (0..NR_LRS)
            .filter(|&n| {
                let lr = self.lrs[n];
                lr_state(lr) == INVALID && (lr_hw(lr) || !lr_eoi(lr))
            })
            .fold(0, |m, n| m | 1 << n)
    }

    fn eoi_mask(&self) -> u64 {
        (0..NR_LRS)
            .filter(|&n| {
                let lr = self.lrs[n];
                lr_state(lr) == INVALID && !lr_hw(lr) && lr_eoi(lr)
            })
            .fold(0, |m, n| m | 1 << n)
    }

    fn set_underflow_irq(&mut self, on: bool) {
        self.underflow = on;
    }
}

/// Where an access goes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Addr {
    /// GICD at this offset.
    Dist(u16),
    /// Redistributor `index` (any, in range or not) at this offset into its two frames.
    Redist { index: u8, offset: u32 },
    /// Anywhere.
    Raw(u64),
}

impl Addr {
    fn ipa(self) -> GuestPhysAddr {
        match self {
            Self::Dist(off) => GuestPhysAddr(GICD_BASE.raw() + u64::from(off) % GICD_SIZE),
            Self::Redist { index, offset } => GuestPhysAddr(
                GICR_BASE.raw() + GICR_STRIDE * u64::from(index) + u64::from(offset) % GICR_STRIDE,
            ),
            Self::Raw(a) => GuestPhysAddr(a),
        }
    }
}

/// An access width: mostly the architectural ones.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Size {
    B1,
    B2,
    B4,
    B8,
    Other(u8),
}

impl Size {
    fn bytes(self) -> u8 {
        match self {
            Self::B1 => 1,
            Self::B2 => 2,
            Self::B4 => 4,
            Self::B8 => 8,
            Self::Other(n) => n,
        }
    }
}

/// One step. vCPU numbers are taken modulo (vCPUs + 1): the last one does not exist.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Op {
    Read {
        vcpu: u8,
        addr: Addr,
        size: Size,
    },
    Write {
        vcpu: u8,
        addr: Addr,
        size: Size,
        value: u64,
    },
    SpiLevel {
        intid: u16,
        level: bool,
    },
    InjectMapped {
        vcpu: u8,
        intid: u8,
    },
    SendSgi {
        sender: u8,
        value: u64,
    },
    /// The core enters the vCPU: `flush` when `needs_flush` says so (or always, with
    /// `force`, even on a running vCPU: `flush` then folds first).
    Enter {
        vcpu: u8,
        force: bool,
    },
    /// The vCPU exits: `sync`.
    Exit {
        vcpu: u8,
    },
    /// The running guest acknowledges LR `lr`.
    Ack {
        vcpu: u8,
        lr: u8,
    },
    /// The running guest acknowledges and deactivates LR `lr`.
    Complete {
        vcpu: u8,
        lr: u8,
    },
    HasPending {
        vcpu: u8,
    },
}

/// A VM's vGIC and its vCPUs' list registers.
struct World {
    vgic: Vgic,
    nr: usize,
    lrs: Vec<FakeListRegs>,
    running: Vec<bool>,
}

impl World {
    /// vCPU `v` of the VM, or the first one beyond it.
    fn any_vcpu(&self, v: u8) -> VcpuId {
        VcpuId(u16::from(v) % (self.nr as u16 + 1))
    }

    /// A vCPU that exists.
    fn vcpu(&self, v: u8) -> usize {
        usize::from(v) % self.nr
    }

    fn kick(&self, kick: Kick, what: &Op) {
        for v in kick.iter() {
            assert!(
                v.index() < self.nr,
                "{what:?} kicks {v:?} of {} vCPUs",
                self.nr
            );
        }
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Read { vcpu, addr, size } => {
                let _ = self
                    .vgic
                    .mmio_read(self.any_vcpu(vcpu), addr.ipa(), size.bytes());
            }
            Op::Write {
                vcpu,
                addr,
                size,
                value,
            } => {
                let k = self
                    .vgic
                    .mmio_write(self.any_vcpu(vcpu), addr.ipa(), size.bytes(), value);
                self.kick(k, op);
            }
            Op::SpiLevel { intid, level } => {
                let k = self.vgic.set_spi_level(IntId(u32::from(intid)), level);
                self.kick(k, op);
            }
            Op::InjectMapped { vcpu, intid } => {
                // The machine's number behind it is the guest's, as on QEMU virt.
                let intid = IntId(u32::from(intid));
                let k = self.vgic.inject_mapped(self.any_vcpu(vcpu), intid, intid);
                self.kick(k, op);
            }
            Op::SendSgi { sender, value } => {
                let k = self.vgic.send_sgi(self.any_vcpu(sender), value);
                self.kick(k, op);
            }
            Op::Enter { vcpu, force } => {
                let v = self.vcpu(vcpu);
                let id = VcpuId(v as u16);
                if force || (!self.running[v] && self.vgic.needs_flush(id)) {
                    self.vgic.flush(id, &mut self.lrs[v]);
                }
                self.running[v] = true;
            }
            Op::Exit { vcpu } => {
                let v = self.vcpu(vcpu);
                self.vgic.sync(VcpuId(v as u16), &mut self.lrs[v]);
                self.running[v] = false;
            }
            Op::Ack { vcpu, lr } => {
                let v = self.vcpu(vcpu);
                if self.running[v] {
                    self.lrs[v].ack(usize::from(lr) % NR_LRS);
                }
            }
            Op::Complete { vcpu, lr } => {
                let v = self.vcpu(vcpu);
                if self.running[v] {
                    self.lrs[v].complete(usize::from(lr) % NR_LRS);
                }
            }
            Op::HasPending { vcpu } => {
                let _ = self.vgic.has_pending(self.any_vcpu(vcpu));
            }
        }
        // Out-of-range vCPUs are ignored, never indexed.
        let _ = self.vgic.needs_flush(VcpuId(self.nr as u16));
        self.check(op);
    }

    /// What must hold of the list registers the running vCPUs see.
    fn check(&self, op: &Op) {
        let mut spi_on: Vec<Option<usize>> = vec![None; NR_SPIS as usize];
        for v in (0..self.nr).filter(|&v| self.running[v]) {
            let mut seen = [false; 32 + NR_SPIS as usize];
            for (n, &lr) in self.lrs[v].lrs.iter().enumerate() {
                if lr_state(lr) == INVALID {
                    continue;
                }
                let intid = lr_vintid(lr);
                assert!(
                    intid < u64::from(IntId::SPI_BASE + NR_SPIS),
                    "vCPU {v} LR {n} holds vINTID {intid} (after {op:?})"
                );
                let i = intid as usize;
                assert!(
                    !seen[i],
                    "vCPU {v} holds INTID {intid} in two LRs: {:x?} (after {op:?})",
                    self.lrs[v].lrs
                );
                seen[i] = true;
                if lr_hw(lr) {
                    assert!(
                        (16..32).contains(&intid) && lr_pintid(lr) == intid,
                        "vCPU {v} LR {n} = {lr:#x}: HW = 1 for INTID {intid}"
                    );
                }
                if intid >= u64::from(IntId::SPI_BASE) {
                    let spi = i - IntId::SPI_BASE as usize;
                    if let Some(other) = spi_on[spi] {
                        panic!(
                            "SPI {intid} in the LRs of running vCPUs {other} and {v} (after {op:?})"
                        );
                    }
                    spi_on[spi] = Some(v);
                }
            }
        }
    }
}

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(pick) = u.arbitrary::<u8>() else {
        return;
    };
    // Mostly small VMs; sometimes the largest, or more than the vGIC allows (it clamps).
    let asked = match pick {
        0 => MAX_VCPUS + 1 + usize::from(pick),
        1 => MAX_VCPUS,
        _ => usize::from(pick % 8) + 1,
    };
    let vgic = Vgic::new(asked);
    let nr = vgic.nr_vcpus();
    assert_eq!(nr, asked.min(MAX_VCPUS));
    let mut world = World {
        vgic,
        nr,
        lrs: (0..nr).map(|_| FakeListRegs::default()).collect(),
        running: vec![false; nr],
    };
    for _ in 0..MAX_OPS {
        let Ok(op) = u.arbitrary::<Op>() else {
            break;
        };
        world.step(&op);
        if u.is_empty() {
            break;
        }
    }
}
