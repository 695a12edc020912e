//! The virtio-mmio transport, version 2 (virtio 1.2 §4.2.2): the register frame of one slot
//! (`abi::layout::VIRTIO_MMIO_BASE + 0x200·n`), generic over a [`VirtioDevice`].
//!
//! The frame is a table of registers (offset, handler) checked in one place. Control registers
//! take only aligned 32-bit accesses (§4.2.2.2); anything else reads as 0 and is ignored, as
//! are unknown offsets. The configuration space from 0x100 takes 8-, 16-, 32- and 64-bit
//! accesses and is the device's.
//!
//! Status follows §2.1 and §3.1.1: writing 0 resets the device; FEATURES_OK sticks only if the
//! driver accepted nothing that was not offered and accepted VIRTIO_F_VERSION_1 (§2.2.2, §6.1);
//! DRIVER_OK sticks only after FEATURES_OK. A driver cannot clear a bit except by reset. Queue
//! notifications before DRIVER_OK are ignored (§3.1.2: the device must not consume buffers
//! before it). A broken queue sets DEVICE_NEEDS_RESET, and once DRIVER_OK is set also raises a
//! configuration-change interrupt (§2.1.2); the device then ignores notifications until reset.
//!
//! The interrupt is a level ([`MmioTransport::irq_level`]): any bit of InterruptStatus.

use super::queue::{Queue, QueueError};
use super::{feature, VirtioDevice};
use alloc::vec::Vec;
use tock_registers::{register_bitfields, LocalRegisterCopy};
use vmboot::memory::GuestMemory;

/// "virt" in little-endian ASCII (§4.2.2, MagicValue).
pub const MAGIC: u32 = 0x7472_6976;
/// The non-legacy virtio-mmio version (§4.2.2, Version).
pub const VERSION: u32 = 2;
/// VendorID: "rhyv" in little-endian ASCII; drivers match on DeviceID only.
pub const VENDOR_ID: u32 = 0x7679_6872;
/// Where the device configuration space starts in the frame (§4.2.2, Config).
pub const CONFIG_OFFSET: u64 = 0x100;
/// Size of one frame (`abi::layout::VIRTIO_MMIO_STRIDE`).
pub const FRAME_SIZE: u64 = 0x200;

register_bitfields! [u32,
    /// Device status (§2.1).
    STATUS [
        ACKNOWLEDGE OFFSET(0) NUMBITS(1) [],
        DRIVER OFFSET(1) NUMBITS(1) [],
        DRIVER_OK OFFSET(2) NUMBITS(1) [],
        FEATURES_OK OFFSET(3) NUMBITS(1) [],
        DEVICE_NEEDS_RESET OFFSET(6) NUMBITS(1) [],
        FAILED OFFSET(7) NUMBITS(1) []
    ],
    /// InterruptStatus / InterruptACK (§4.2.2).
    INTERRUPT [
        /// A used buffer notification (§2.7.7).
        USED_BUFFER OFFSET(0) NUMBITS(1) [],
        /// A configuration change notification (§2.5).
        CONFIG_CHANGE OFFSET(1) NUMBITS(1) []
    ]
];

/// Register offsets of the frame (§4.2.2, table 4.1).
pub mod offset {
    /// MagicValue (R).
    pub const MAGIC_VALUE: u64 = 0x000;
    /// Version (R).
    pub const VERSION: u64 = 0x004;
    /// DeviceID (R).
    pub const DEVICE_ID: u64 = 0x008;
    /// VendorID (R).
    pub const VENDOR_ID: u64 = 0x00c;
    /// DeviceFeatures (R).
    pub const DEVICE_FEATURES: u64 = 0x010;
    /// DeviceFeaturesSel (W).
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    /// DriverFeatures (W).
    pub const DRIVER_FEATURES: u64 = 0x020;
    /// DriverFeaturesSel (W).
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    /// QueueSel (W).
    pub const QUEUE_SEL: u64 = 0x030;
    /// QueueNumMax (R).
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    /// QueueNum (W).
    pub const QUEUE_NUM: u64 = 0x038;
    /// QueueReady (RW).
    pub const QUEUE_READY: u64 = 0x044;
    /// QueueNotify (W).
    pub const QUEUE_NOTIFY: u64 = 0x050;
    /// InterruptStatus (R).
    pub const INTERRUPT_STATUS: u64 = 0x060;
    /// InterruptACK (W).
    pub const INTERRUPT_ACK: u64 = 0x064;
    /// Status (RW).
    pub const STATUS: u64 = 0x070;
    /// QueueDescLow (W).
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    /// QueueDescHigh (W).
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    /// QueueDriverLow (W).
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    /// QueueDriverHigh (W).
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    /// QueueDeviceLow (W).
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    /// QueueDeviceHigh (W).
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// SHMSel (W).
    pub const SHM_SEL: u64 = 0x0ac;
    /// SHMLenLow (R).
    pub const SHM_LEN_LOW: u64 = 0x0b0;
    /// SHMLenHigh (R).
    pub const SHM_LEN_HIGH: u64 = 0x0b4;
    /// SHMBaseLow (R).
    pub const SHM_BASE_LOW: u64 = 0x0b8;
    /// SHMBaseHigh (R).
    pub const SHM_BASE_HIGH: u64 = 0x0bc;
    /// ConfigGeneration (R).
    pub const CONFIG_GENERATION: u64 = 0x0fc;
}

/// Device status as a register copy.
pub type Status = LocalRegisterCopy<u32, STATUS::Register>;

/// The bits a driver may set in Status; DEVICE_NEEDS_RESET is the device's.
fn driver_status_bits() -> u32 {
    (STATUS::ACKNOWLEDGE::SET
        + STATUS::DRIVER::SET
        + STATUS::DRIVER_OK::SET
        + STATUS::FEATURES_OK::SET
        + STATUS::FAILED::SET)
        .value
}

/// Which half of a 64-bit queue address a register holds.
#[derive(Clone, Copy)]
enum Half {
    Low,
    High,
}

/// Which ring address a register sets.
#[derive(Clone, Copy)]
enum Ring {
    Desc,
    Driver,
    Device,
}

/// One entry of the register map.
struct Register<D> {
    offset: u64,
    read: fn(&MmioTransport<D>) -> u32,
    write: fn(&mut MmioTransport<D>, u32, &mut dyn GuestMemory),
}

/// A virtio-mmio slot with its device.
#[derive(Debug)]
pub struct MmioTransport<D> {
    device: D,
    queues: Vec<Queue>,
    status: Status,
    interrupt_status: LocalRegisterCopy<u32, INTERRUPT::Register>,
    device_features_sel: u32,
    driver_features_sel: u32,
    driver_features: u64,
    /// The driver wrote a bit in a DriverFeatures word beyond the 64 we have.
    driver_features_beyond: bool,
    queue_sel: u32,
    config_generation: u32,
    /// Whether a guest error was already logged since the last reset (rate limit).
    warned: bool,
}

impl<D: VirtioDevice + 'static> MmioTransport<D> {
    const REGISTERS: &'static [Register<D>] = &[
        Register {
            offset: offset::MAGIC_VALUE,
            read: |_| MAGIC,
            write: Self::ignore,
        },
        Register {
            offset: offset::VERSION,
            read: |_| VERSION,
            write: Self::ignore,
        },
        Register {
            offset: offset::DEVICE_ID,
            read: |t| t.device.device_id(),
            write: Self::ignore,
        },
        Register {
            offset: offset::VENDOR_ID,
            read: |_| VENDOR_ID,
            write: Self::ignore,
        },
        Register {
            offset: offset::DEVICE_FEATURES,
            read: Self::read_device_features,
            write: Self::ignore,
        },
        Register {
            offset: offset::DEVICE_FEATURES_SEL,
            read: Self::zero,
            write: |t, v, _| t.device_features_sel = v,
        },
        Register {
            offset: offset::DRIVER_FEATURES,
            read: Self::zero,
            write: Self::write_driver_features,
        },
        Register {
            offset: offset::DRIVER_FEATURES_SEL,
            read: Self::zero,
            write: |t, v, _| t.driver_features_sel = v,
        },
        Register {
            offset: offset::QUEUE_SEL,
            read: Self::zero,
            write: |t, v, _| t.queue_sel = v,
        },
        Register {
            offset: offset::QUEUE_NUM_MAX,
            // §4.2.2: 0 when the selected queue does not exist.
            read: |t| t.selected().map_or(0, |q| u32::from(q.max_size())),
            write: Self::ignore,
        },
        Register {
            offset: offset::QUEUE_NUM,
            read: Self::zero,
            write: Self::write_queue_num,
        },
        Register {
            offset: offset::QUEUE_READY,
            read: |t| u32::from(t.selected().is_some_and(Queue::is_ready)),
            write: Self::write_queue_ready,
        },
        Register {
            offset: offset::QUEUE_NOTIFY,
            read: Self::zero,
            write: Self::write_queue_notify,
        },
        Register {
            offset: offset::INTERRUPT_STATUS,
            read: |t| t.interrupt_status.get(),
            write: Self::ignore,
        },
        Register {
            offset: offset::INTERRUPT_ACK,
            read: Self::zero,
            write: |t, v, _| {
                let left = t.interrupt_status.get() & !v;
                t.interrupt_status.set(left);
            },
        },
        Register {
            offset: offset::STATUS,
            read: |t| t.status.get(),
            write: Self::write_status,
        },
        Register {
            offset: offset::QUEUE_DESC_LOW,
            read: Self::zero,
            write: |t, v, _| t.write_queue_address(Ring::Desc, Half::Low, v),
        },
        Register {
            offset: offset::QUEUE_DESC_HIGH,
            read: Self::zero,
            write: |t, v, _| t.write_queue_address(Ring::Desc, Half::High, v),
        },
        Register {
            offset: offset::QUEUE_DRIVER_LOW,
            read: Self::zero,
            write: |t, v, _| t.write_queue_address(Ring::Driver, Half::Low, v),
        },
        Register {
            offset: offset::QUEUE_DRIVER_HIGH,
            read: Self::zero,
            write: |t, v, _| t.write_queue_address(Ring::Driver, Half::High, v),
        },
        Register {
            offset: offset::QUEUE_DEVICE_LOW,
            read: Self::zero,
            write: |t, v, _| t.write_queue_address(Ring::Device, Half::Low, v),
        },
        Register {
            offset: offset::QUEUE_DEVICE_HIGH,
            read: Self::zero,
            write: |t, v, _| t.write_queue_address(Ring::Device, Half::High, v),
        },
        Register {
            offset: offset::SHM_SEL,
            read: Self::zero,
            write: Self::ignore,
        },
        // No shared memory regions: "Reading from a non-existent region ... results in a
        // length of -1" (§4.2.2); the base reads the same.
        Register {
            offset: offset::SHM_LEN_LOW,
            read: |_| u32::MAX,
            write: Self::ignore,
        },
        Register {
            offset: offset::SHM_LEN_HIGH,
            read: |_| u32::MAX,
            write: Self::ignore,
        },
        Register {
            offset: offset::SHM_BASE_LOW,
            read: |_| u32::MAX,
            write: Self::ignore,
        },
        Register {
            offset: offset::SHM_BASE_HIGH,
            read: |_| u32::MAX,
            write: Self::ignore,
        },
        Register {
            offset: offset::CONFIG_GENERATION,
            read: |t| t.config_generation,
            write: Self::ignore,
        },
    ];

    /// A transport in its reset state around `device`.
    pub fn new(device: D) -> Self {
        let queues = device
            .queue_max_sizes()
            .iter()
            .map(|&max| Queue::new(max))
            .collect();
        Self {
            device,
            queues,
            status: Status::new(0),
            interrupt_status: LocalRegisterCopy::new(0),
            device_features_sel: 0,
            driver_features_sel: 0,
            driver_features: 0,
            driver_features_beyond: false,
            queue_sel: 0,
            config_generation: 0,
            warned: false,
        }
    }

    /// The device.
    pub fn device(&self) -> &D {
        &self.device
    }

    /// The device, to queue host-side input (then call [`Self::poll`]).
    pub fn device_mut(&mut self) -> &mut D {
        &mut self.device
    }

    /// The Status register as the guest reads it.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether the slot's interrupt line is asserted: InterruptStatus is not zero.
    pub fn irq_level(&self) -> bool {
        self.interrupt_status.get() != 0
    }

    /// The features both sides agreed on (valid once FEATURES_OK is set).
    pub fn negotiated_features(&self) -> u64 {
        self.driver_features & self.offered_features()
    }

    /// Every feature this slot offers: the device's and the transport's (§6).
    pub fn offered_features(&self) -> u64 {
        self.device.device_features()
            | feature::VERSION_1
            | feature::RING_INDIRECT_DESC
            | feature::RING_EVENT_IDX
    }

    /// A guest load of `size` bytes (1, 2, 4 or 8) at `offset` in the frame.
    pub fn read(&mut self, offset: u64, size: u8) -> u64 {
        if offset >= CONFIG_OFFSET {
            let mut buf = [0u8; 8];
            let Some(data) = Self::config_access(offset, size).and_then(|n| buf.get_mut(..n))
            else {
                return 0;
            };
            self.device.read_config(offset - CONFIG_OFFSET, data);
            return u64::from_le_bytes(buf);
        }
        match Self::register(offset, size) {
            Some(r) => u64::from((r.read)(self)),
            None => 0,
        }
    }

    /// A guest store of the low `size` bytes of `value` at `offset` in the frame.
    pub fn write(&mut self, offset: u64, size: u8, value: u64, mem: &mut dyn GuestMemory) {
        if offset >= CONFIG_OFFSET {
            let bytes = value.to_le_bytes();
            if let Some(data) = Self::config_access(offset, size).and_then(|n| bytes.get(..n)) {
                self.device.write_config(offset - CONFIG_OFFSET, data);
                self.check_config_change();
            }
            return;
        }
        if let Some(r) = Self::register(offset, size) {
            (r.write)(self, value as u32, mem);
        }
    }

    /// Lets the device deliver host-side input (received frames, console bytes) to the guest's
    /// buffers; call it after queueing input. Does nothing unless the device is live.
    pub fn poll(&mut self, mem: &mut dyn GuestMemory) {
        if !self.live() {
            return;
        }
        let result = self.device.poll(&mut self.queues, mem);
        self.after_device(result, mem);
    }

    /// The register at `offset`, for an aligned 32-bit access only (§4.2.2.2).
    fn register(offset: u64, size: u8) -> Option<&'static Register<D>> {
        if size != 4 || !offset.is_multiple_of(4) {
            return None;
        }
        Self::REGISTERS.iter().find(|r| r.offset == offset)
    }

    /// The length of a configuration access, if its size is one the bus can make and it fits
    /// in the frame.
    fn config_access(offset: u64, size: u8) -> Option<usize> {
        let n = match size {
            1 | 2 | 4 | 8 => u64::from(size),
            _ => return None,
        };
        (offset.checked_add(n)? <= FRAME_SIZE).then_some(n as usize)
    }

    fn zero(_: &Self) -> u32 {
        0
    }

    fn ignore(_: &mut Self, _: u32, _: &mut dyn GuestMemory) {}

    fn selected(&self) -> Option<&Queue> {
        self.queues.get(self.queue_sel as usize)
    }

    /// The selected queue, if it exists and is not ready: its configuration is frozen while
    /// ready.
    fn selected_unready(&mut self) -> Option<&mut Queue> {
        self.queues
            .get_mut(self.queue_sel as usize)
            .filter(|q| !q.is_ready())
    }

    /// DRIVER_OK is set and the device is not waiting for a reset.
    fn live(&self) -> bool {
        self.status.is_set(STATUS::DRIVER_OK) && !self.status.is_set(STATUS::DEVICE_NEEDS_RESET)
    }

    fn read_device_features(&self) -> u32 {
        let f = self.offered_features();
        match self.device_features_sel {
            0 => f as u32,
            1 => (f >> 32) as u32,
            _ => 0,
        }
    }

    fn write_driver_features(&mut self, v: u32, _: &mut dyn GuestMemory) {
        // §2.2: features are fixed once FEATURES_OK is set.
        if self.status.is_set(STATUS::FEATURES_OK) {
            return;
        }
        match self.driver_features_sel {
            0 => self.driver_features = (self.driver_features & !0xffff_ffff) | u64::from(v),
            1 => self.driver_features = (self.driver_features & 0xffff_ffff) | (u64::from(v) << 32),
            _ => self.driver_features_beyond |= v != 0,
        }
    }

    /// Whether the driver's feature set may be accepted (§2.2.2, §6.1).
    fn features_acceptable(&self) -> bool {
        !self.driver_features_beyond
            && self.driver_features & !self.offered_features() == 0
            && self.driver_features & feature::VERSION_1 != 0
    }

    fn write_status(&mut self, v: u32, mem: &mut dyn GuestMemory) {
        if v == 0 {
            self.reset();
            return;
        }
        let mut new = Status::new(v & driver_status_bits());
        if new.is_set(STATUS::FEATURES_OK) && !self.status.is_set(STATUS::FEATURES_OK) {
            if self.features_acceptable() {
                let f = self.negotiated_features();
                let indirect = f & feature::RING_INDIRECT_DESC != 0;
                let event_idx = f & feature::RING_EVENT_IDX != 0;
                for q in &mut self.queues {
                    q.set_features(indirect, event_idx);
                }
            } else {
                // §3.1.1 step 6: the driver re-reads Status and sees FEATURES_OK clear.
                new.modify(STATUS::FEATURES_OK::CLEAR);
                self.warn_once(format_args!(
                    "driver accepted unoffered features {:#x}",
                    self.driver_features & !self.offered_features()
                ));
            }
        }
        let features_ok =
            self.status.is_set(STATUS::FEATURES_OK) || new.is_set(STATUS::FEATURES_OK);
        if !features_ok {
            new.modify(STATUS::DRIVER_OK::CLEAR);
        }
        let was_live = self.status.is_set(STATUS::DRIVER_OK);
        self.status.set(self.status.get() | new.get());
        if !was_live && self.status.is_set(STATUS::DRIVER_OK) {
            self.device.activate(self.negotiated_features());
            self.poll(mem);
        }
    }

    /// The device reset (§2.4, §4.2.2.1): queues not ready, InterruptStatus clear, features
    /// forgotten, the device back to its initial state.
    fn reset(&mut self) {
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.status.set(0);
        self.interrupt_status.set(0);
        self.device_features_sel = 0;
        self.driver_features_sel = 0;
        self.driver_features = 0;
        self.driver_features_beyond = false;
        self.queue_sel = 0;
        self.warned = false;
    }

    fn write_queue_num(&mut self, v: u32, _: &mut dyn GuestMemory) {
        if let Some(q) = self.selected_unready() {
            // A value above 0xffff can never be valid; keep it invalid rather than truncated.
            q.set_size(u16::try_from(v).unwrap_or(0));
        }
    }

    fn write_queue_address(&mut self, ring: Ring, half: Half, v: u32) {
        let Some(q) = self.selected_unready() else {
            return;
        };
        let (mut desc, mut driver, mut device) = (q.desc_table(), q.avail_ring(), q.used_ring());
        let target = match ring {
            Ring::Desc => &mut desc,
            Ring::Driver => &mut driver,
            Ring::Device => &mut device,
        };
        target.0 = match half {
            Half::Low => (target.0 & !0xffff_ffff) | u64::from(v),
            Half::High => (target.0 & 0xffff_ffff) | (u64::from(v) << 32),
        };
        q.set_addresses(desc, driver, device);
    }

    fn write_queue_ready(&mut self, v: u32, mem: &mut dyn GuestMemory) {
        let index = self.queue_sel as usize;
        let Some(q) = self.queues.get_mut(index) else {
            return;
        };
        if v == 0 {
            q.disable();
            return;
        }
        if q.is_ready() {
            return;
        }
        if let Err(e) = q.enable(mem) {
            // QueueReady stays 0, and the device cannot work without the queue.
            self.fail(e, Some(index));
        }
    }

    fn write_queue_notify(&mut self, v: u32, mem: &mut dyn GuestMemory) {
        // §3.1.2: no buffer is used before DRIVER_OK; a broken device waits for a reset.
        if !self.live() {
            return;
        }
        let Ok(index) = u16::try_from(v) else {
            return;
        };
        if !self
            .queues
            .get(usize::from(index))
            .is_some_and(Queue::is_ready)
        {
            return;
        }
        let result = self.device.process(index, &mut self.queues, mem);
        self.after_device(result, mem);
    }

    /// Raises the interrupts the device's work calls for, or fails the device.
    fn after_device(&mut self, result: Result<(), QueueError>, mem: &mut dyn GuestMemory) {
        if let Err(e) = result {
            // The device does not say which of its queues broke.
            self.fail(e, None);
            return;
        }
        let mut notify = false;
        for i in 0..self.queues.len() {
            let Some(q) = self.queues.get_mut(i) else {
                break;
            };
            match q.needs_notification(mem) {
                Ok(n) => notify |= n,
                Err(e) => {
                    self.fail(e, Some(i));
                    return;
                }
            }
        }
        if notify {
            self.interrupt_status.modify(INTERRUPT::USED_BUFFER::SET);
        }
        self.check_config_change();
    }

    fn check_config_change(&mut self) {
        if self.device.take_config_changed() {
            self.config_generation = self.config_generation.wrapping_add(1);
            if self.status.is_set(STATUS::DRIVER_OK) {
                self.interrupt_status.modify(INTERRUPT::CONFIG_CHANGE::SET);
            }
        }
    }

    /// The device met a guest error it cannot recover from (§2.1.2): DEVICE_NEEDS_RESET, and
    /// a configuration-change notification once DRIVER_OK is set.
    fn fail(&mut self, e: QueueError, queue: Option<usize>) {
        match queue {
            Some(q) => self.warn_once(format_args!("queue {q}: {e}; device needs reset")),
            None => self.warn_once(format_args!("{e}; device needs reset")),
        }
        self.status.modify(STATUS::DEVICE_NEEDS_RESET::SET);
        if self.status.is_set(STATUS::DRIVER_OK) {
            self.interrupt_status.modify(INTERRUPT::CONFIG_CHANGE::SET);
        }
    }

    /// Guest misbehaviour is logged once per reset, so a guest cannot flood the console.
    fn warn_once(&mut self, what: core::fmt::Arguments<'_>) {
        if !self.warned {
            self.warned = true;
            log::warn!("virtio device {}: {}", self.device.device_id(), what);
        }
    }
}

/// Whether a guest access of `size` bytes at `offset` in a frame is one the bus carries: an
/// aligned 32-bit access to the control registers (§4.2.2.2), or an 8-, 16-, 32- or 64-bit
/// access that fits in the configuration space. The VMM answers any other with an abort, as a
/// bus would; [`MmioTransport::read`] and [`MmioTransport::write`] take them too, as nothing.
pub fn access_valid(offset: u64, size: u8) -> bool {
    if offset >= CONFIG_OFFSET {
        matches!(size, 1 | 2 | 4 | 8)
            && offset
                .checked_add(u64::from(size))
                .is_some_and(|end| end <= FRAME_SIZE)
    } else {
        size == 4 && offset.is_multiple_of(4)
    }
}

/// A virtio-mmio slot whatever its device, so the VMM can keep each VM's slots in one table.
pub trait MmioSlot {
    /// A guest load (see [`MmioTransport::read`]).
    fn read(&mut self, offset: u64, size: u8) -> u64;
    /// A guest store (see [`MmioTransport::write`]).
    fn write(&mut self, offset: u64, size: u8, value: u64, mem: &mut dyn GuestMemory);
    /// Host-side work for the guest (see [`MmioTransport::poll`]).
    fn poll(&mut self, mem: &mut dyn GuestMemory);
    /// The interrupt line.
    fn irq_level(&self) -> bool;
}

impl<D: VirtioDevice + 'static> MmioSlot for MmioTransport<D> {
    fn read(&mut self, offset: u64, size: u8) -> u64 {
        MmioTransport::read(self, offset, size)
    }
    fn write(&mut self, offset: u64, size: u8, value: u64, mem: &mut dyn GuestMemory) {
        MmioTransport::write(self, offset, size, value, mem);
    }
    fn poll(&mut self, mem: &mut dyn GuestMemory) {
        MmioTransport::poll(self, mem);
    }
    fn irq_level(&self) -> bool {
        MmioTransport::irq_level(self)
    }
}
