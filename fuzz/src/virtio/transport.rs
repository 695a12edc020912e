//! The reference model of the virtio-mmio transport (§4.2.2, §2.1, §3.1): what each
//! register access does to the registers, the queues and the interrupt, and what each load
//! must return; the harness runs every guest access through it beside the real transport.

use vmm::virtio::feature;
use vmm::virtio::mmio::{offset, CONFIG_OFFSET, FRAME_SIZE, VENDOR_ID};

use super::memory::{Mode, QueueModel};
use super::{interrupt, status, Harness, Model, AVAIL_F_NO_INTERRUPT};

/// The transport's registers, as the reference model keeps them.
#[derive(Debug, Default)]
pub(super) struct Regs {
    pub(super) status: u32,
    pub(super) interrupt: u32,
    pub(super) device_features_sel: u32,
    pub(super) driver_features_sel: u32,
    pub(super) driver_features: u64,
    pub(super) driver_features_beyond: bool,
    pub(super) queue_sel: u32,
    pub(super) generation: u32,
    pub(super) negotiated: u64,
}

impl<M: Model> Harness<M> {
    /// §2.7.7 and §2.7.10: for each ready queue with new used elements, whether the driver
    /// asked to be told.
    pub(super) fn notifications(&mut self) {
        let mut need = false;
        let qs: Vec<QueueModel> = self.mem.queues().clone();
        for (i, q) in qs.iter().enumerate() {
            if !q.ready || q.consumed == q.signalled {
                continue;
            }
            let (old, new) = (q.signalled, q.consumed);
            need |= if q.event_idx {
                let event = self.mem.peek16(q.used_event().unwrap_or(0));
                new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
            } else {
                self.mem.peek16(q.avail) & AVAIL_F_NO_INTERRUPT == 0
            };
            self.mem.queues()[i].signalled = new;
        }
        if need {
            self.regs.interrupt |= interrupt::USED_BUFFER;
        }
    }

    /// A point where the transport looks for a configuration change (§4.2.2
    /// ConfigGeneration).
    pub(super) fn observe_config(&mut self) {
        if self.model.take_config_changed() {
            self.regs.generation = self.regs.generation.wrapping_add(1);
            if self.regs.status & status::DRIVER_OK != 0 {
                self.regs.interrupt |= interrupt::CONFIG_CHANGE;
            }
        }
    }

    pub(super) fn mmio_write(&mut self, off: u64, size: u8, value: u64) {
        if off >= CONFIG_OFFSET {
            let valid = matches!(size, 1 | 2 | 4 | 8)
                && off
                    .checked_add(u64::from(size))
                    .is_some_and(|e| e <= FRAME_SIZE);
            self.with_mode(Mode::Idle, |t, m| t.write(off, size, value, m));
            if valid {
                self.observe_config();
            }
            self.after_step();
            return;
        }
        let v = value as u32;
        let reg = (size == 4 && off.is_multiple_of(4)).then_some(off);
        let sel = self.regs.queue_sel as usize;
        let frozen = status::FEATURES_OK;
        match reg {
            Some(offset::DEVICE_FEATURES_SEL) => self.regs.device_features_sel = v,
            Some(offset::DRIVER_FEATURES) if self.regs.status & frozen == 0 => {
                let f = &mut self.regs.driver_features;
                match self.regs.driver_features_sel {
                    0 => *f = *f & !0xffff_ffff | u64::from(v),
                    1 => *f = *f & 0xffff_ffff | u64::from(v) << 32,
                    _ => self.regs.driver_features_beyond |= v != 0,
                }
            }
            Some(offset::DRIVER_FEATURES_SEL) => self.regs.driver_features_sel = v,
            Some(offset::QUEUE_SEL) => self.regs.queue_sel = v,
            Some(offset::QUEUE_NUM) => {
                if let Some(q) = self.mem.queues().get_mut(sel).filter(|q| !q.ready) {
                    q.size = u16::try_from(v).unwrap_or(0);
                }
            }
            Some(offset::QUEUE_READY) => return self.queue_ready(v),
            Some(offset::QUEUE_NOTIFY) => {
                let ready = usize::try_from(v)
                    .ok()
                    .and_then(|i| self.mem.queues().get(i).map(|q| q.ready));
                let ran = self.live() && v <= 0xffff && ready == Some(true);
                return self.device_step(ran, |t, m| t.write(off, size, value, m));
            }
            Some(offset::INTERRUPT_ACK) => self.regs.interrupt &= !v,
            Some(offset::STATUS) => return self.status_write(v),
            Some(
                o @ (offset::QUEUE_DESC_LOW
                | offset::QUEUE_DESC_HIGH
                | offset::QUEUE_DRIVER_LOW
                | offset::QUEUE_DRIVER_HIGH
                | offset::QUEUE_DEVICE_LOW
                | offset::QUEUE_DEVICE_HIGH),
            ) => {
                if let Some(q) = self.mem.queues().get_mut(sel).filter(|q| !q.ready) {
                    let ring = match o & !7 {
                        offset::QUEUE_DESC_LOW => &mut q.desc,
                        offset::QUEUE_DRIVER_LOW => &mut q.avail,
                        _ => &mut q.used,
                    };
                    *ring = if o % 8 == 0 {
                        *ring & !0xffff_ffff | u64::from(v)
                    } else {
                        *ring & 0xffff_ffff | u64::from(v) << 32
                    };
                }
            }
            _ => {}
        }
        self.with_mode(Mode::Idle, |t, m| t.write(off, size, value, m));
        self.after_step();
    }

    fn queue_ready(&mut self, v: u32) {
        let sel = self.regs.queue_sel as usize;
        let q = self.mem.queues().get(sel).cloned();
        let validate = match &q {
            Some(q) => v != 0 && !q.ready,
            None => false,
        };
        if let (Some(_), 0) = (&q, v) {
            self.mem.queues()[sel].ready = false;
        }
        if !validate {
            self.with_mode(Mode::Idle, |t, m| {
                t.write(offset::QUEUE_READY, 4, v.into(), m)
            });
            self.after_step();
            return;
        }
        let valid = q.is_some_and(|q| q.valid());
        self.with_mode(Mode::Validate(sel), |t, m| {
            t.write(offset::QUEUE_READY, 4, v.into(), m)
        });
        if valid {
            let q = &mut self.mem.queues()[sel];
            q.ready = true;
            q.consumed = 0;
            q.signalled = 0;
            q.pending = None;
        } else {
            self.regs.status |= status::DEVICE_NEEDS_RESET;
            if self.regs.status & status::DRIVER_OK != 0 {
                self.regs.interrupt |= interrupt::CONFIG_CHANGE;
            }
        }
        self.after_step();
    }

    fn status_write(&mut self, v: u32) {
        use status::*;
        if v == 0 {
            // §2.4: back to the state after construction; ConfigGeneration survives.
            let generation = self.regs.generation;
            self.regs = Regs {
                generation,
                ..Regs::default()
            };
            for q in self.mem.queues() {
                q.reset();
            }
            self.model.reset();
            self.with_mode(Mode::Idle, |t, m| t.write(offset::STATUS, 4, 0, m));
            self.after_step();
            return;
        }
        let mut new = v & DRIVER_BITS;
        let r = &mut self.regs;
        if new & FEATURES_OK != 0 && r.status & FEATURES_OK == 0 {
            let acceptable = !r.driver_features_beyond
                && r.driver_features & !self.offered == 0
                && r.driver_features & feature::VERSION_1 != 0;
            if acceptable {
                r.negotiated = r.driver_features & self.offered;
                let event_idx = r.negotiated & feature::RING_EVENT_IDX != 0;
                for q in self.mem.queues() {
                    q.event_idx = event_idx;
                }
            } else {
                new &= !FEATURES_OK;
            }
        }
        let r = &mut self.regs;
        if (r.status | new) & FEATURES_OK == 0 {
            new &= !DRIVER_OK;
        }
        let was = r.status & DRIVER_OK != 0;
        r.status |= new;
        let activate = !was && r.status & DRIVER_OK != 0;
        if activate {
            let negotiated = r.negotiated;
            self.model.activate(negotiated);
        }
        let ran = activate && self.live();
        self.device_step(ran, |t, m| t.write(offset::STATUS, 4, v.into(), m));
    }

    /// What a guest load must return, from the models.
    fn expected_read(&mut self, off: u64, size: u8) -> u64 {
        if off >= CONFIG_OFFSET {
            let n = match size {
                1 | 2 | 4 | 8 => u64::from(size),
                _ => return 0,
            };
            if off.checked_add(n).is_none_or(|e| e > FRAME_SIZE) {
                return 0;
            }
            let config = self.model.config();
            let mut b = [0u8; 8];
            for (i, byte) in b.iter_mut().take(n as usize).enumerate() {
                let at = (off - CONFIG_OFFSET) as usize + i;
                *byte = config.get(at).copied().unwrap_or(0);
            }
            return u64::from_le_bytes(b);
        }
        if size != 4 || !off.is_multiple_of(4) {
            return 0;
        }
        let r = &self.regs;
        let sel = r.queue_sel as usize;
        let v: u32 = match off {
            // "virt" (§4.2.2).
            offset::MAGIC_VALUE => 0x7472_6976,
            offset::VERSION => 2,
            offset::DEVICE_ID => M::DEVICE_ID,
            offset::VENDOR_ID => VENDOR_ID,
            offset::DEVICE_FEATURES => match r.device_features_sel {
                0 => self.offered as u32,
                1 => (self.offered >> 32) as u32,
                _ => 0,
            },
            offset::QUEUE_NUM_MAX => {
                let max = self.mem.queues().get(sel).map_or(0, |q| q.max);
                u32::from(max)
            }
            offset::QUEUE_READY => u32::from(self.mem.queues().get(sel).is_some_and(|q| q.ready)),
            offset::INTERRUPT_STATUS => r.interrupt,
            offset::STATUS => r.status,
            // No shared memory regions: -1 (§4.2.2).
            offset::SHM_LEN_LOW
            | offset::SHM_LEN_HIGH
            | offset::SHM_BASE_LOW
            | offset::SHM_BASE_HIGH => u32::MAX,
            offset::CONFIG_GENERATION => r.generation,
            _ => 0,
        };
        u64::from(v)
    }

    pub(super) fn mmio_read(&mut self, off: u64, size: u8) {
        let expected = self.expected_read(off, size);
        let (got, _, _) = self.with_mode(Mode::Idle, |t, _| t.read(off, size));
        assert_eq!(got, expected, "load of {size} bytes at {off:#x}");
        self.after_step();
    }

    /// Every register a guest can read against the model, each queue's through QueueSel.
    pub(super) fn check_registers(&mut self) {
        let t = &mut self.t;
        let r = &self.regs;
        assert_eq!(t.status().get(), r.status, "Status");
        assert_eq!(
            t.read(offset::INTERRUPT_STATUS, 4),
            u64::from(r.interrupt),
            "InterruptStatus"
        );
        assert_eq!(t.irq_level(), r.interrupt != 0, "interrupt line");
        assert_eq!(
            t.read(offset::CONFIG_GENERATION, 4),
            u64::from(r.generation),
            "ConfigGeneration"
        );
        assert!(
            r.status & status::DRIVER_OK == 0 || r.status & status::FEATURES_OK != 0,
            "DRIVER_OK without FEATURES_OK"
        );
        let queues = self.mem.queues().clone();
        for (i, q) in queues.iter().enumerate() {
            self.t.write(offset::QUEUE_SEL, 4, i as u64, &mut self.mem);
            assert_eq!(
                self.t.read(offset::QUEUE_READY, 4),
                u64::from(q.ready),
                "QueueReady of {i}"
            );
            assert_eq!(
                self.t.read(offset::QUEUE_NUM_MAX, 4),
                u64::from(q.max),
                "QueueNumMax of {i}"
            );
        }
        let sel = u64::from(self.regs.queue_sel);
        self.t.write(offset::QUEUE_SEL, 4, sel, &mut self.mem);
        // Past the last queue: QueueNumMax 0 (§4.2.2).
        self.t
            .write(offset::QUEUE_SEL, 4, queues.len() as u64, &mut self.mem);
        assert_eq!(self.t.read(offset::QUEUE_NUM_MAX, 4), 0);
        self.t.write(offset::QUEUE_SEL, 4, sel, &mut self.mem);
    }
}
