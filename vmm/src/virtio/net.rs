//! virtio-net (device ID 1, virtio 1.2 §5.1): a MAC address in the configuration space
//! (VIRTIO_NET_F_MAC), the link status (VIRTIO_NET_F_STATUS), and one receive/transmit queue
//! pair, or up to [`MAX_QUEUE_PAIRS`] ([`VirtioNet::with_queue_pairs`]: VIRTIO_NET_F_MQ, with
//! the control queue of VIRTIO_NET_F_CTRL_VQ).
//!
//! Queues (§5.1.2): receive and transmit of pair N are 2N and 2N+1; the control queue follows
//! the last pair the driver may use: 2·`max_virtqueue_pairs` with MQ, 2 without. After a reset
//! one pair is enabled; the driver enables more with VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET (§5.1.6.5.5).
//! Frames from any transmit queue are sent; a received frame goes to the receive queue of an
//! enabled pair its flow hashes to ([`super::flow`]), so one connection stays in order. The
//! control queue answers only that command (the other classes need features not offered):
//! VIRTIO_NET_OK for 1..=max pairs, VIRTIO_NET_ERR for anything else.
//!
//! Every buffer starts with `struct virtio_net_hdr` (§5.1.6), 12 bytes with VIRTIO_F_VERSION_1.
//! No offloads are offered, so the transmit header is read past and every received frame gets a
//! header of zeroes but `num_buffers` = 1 (§5.1.6.4: without VIRTIO_NET_F_MRG_RXBUF a frame takes
//! one buffer).
//!
//! Transmitted frames go to the [`NetBackend`] at once. Received frames are queued by the VMM
//! with [`VirtioNet::inject_rx`] into a bounded ring of preallocated slots (a full ring drops the
//! frame and counts it) and delivered on [`super::MmioTransport::poll`].

use super::queue::{Queue, QueueError};
use super::{device_id, read_config_bytes, VirtioDevice};
use abi::vmm::Mac;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use vmboot::memory::GuestMemory;

/// Size of each queue.
pub const QUEUE_SIZE: u16 = 256;
/// Largest frame carried: a 1500-byte MTU Ethernet frame with a VLAN tag, with room to spare.
pub const MAX_FRAME: usize = 1522;
/// Received frames held for the guest.
pub const RX_SLOTS: usize = 64;
/// `struct virtio_net_hdr` with VIRTIO_F_VERSION_1 (§5.1.6): flags, gso_type, hdr_len, gso_size,
/// csum_start, csum_offset, num_buffers.
pub const HEADER_BYTES: usize = 12;
/// Offset of `num_buffers` in the header.
const NUM_BUFFERS: usize = 10;

/// Most receive/transmit queue pairs a card offers (`max_virtqueue_pairs`): Linux asks for
/// one per vCPU.
pub const MAX_QUEUE_PAIRS: u16 = 4;
/// Most queues: the pairs and the control queue.
const MAX_QUEUES: usize = 2 * MAX_QUEUE_PAIRS as usize + 1;

/// Feature bits (§5.1.3).
pub mod feature {
    /// The device has a MAC address in its configuration.
    pub const MAC: u64 = 1 << 5;
    /// The configuration has a link status.
    pub const STATUS: u64 = 1 << 16;
    /// A control queue.
    pub const CTRL_VQ: u64 = 1 << 17;
    /// Several queue pairs, enabled through the control queue.
    pub const MQ: u64 = 1 << 22;
}

/// The control queue's protocol (§5.1.6.5): `u8 class; u8 command; data; u8 ack`.
pub mod ctrl {
    /// The multiqueue class.
    pub const CLASS_MQ: u8 = 4;
    /// Its command: `le16 virtqueue_pairs`.
    pub const MQ_VQ_PAIRS_SET: u8 = 0;
    /// The acks.
    pub const OK: u8 = 0;
    pub const ERR: u8 = 1;
    /// Bytes the driver sends for VQ_PAIRS_SET: class, command, le16.
    pub const PAIRS_SET_BYTES: usize = 4;
}

/// What a queue index is for, given what was negotiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Receive(u16),
    Transmit(u16),
    Control,
    Unused,
}

/// `status` bits of the configuration (§5.1.4).
const LINK_UP: u16 = 1;

/// An Ethernet MAC address, as frames carry it: any address, group ones too. A card's own
/// address is an [`abi::vmm::Mac`], which is always unicast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The broadcast address.
    pub const BROADCAST: Self = Self([0xff; 6]);

    /// The stable default address of network card `nic` of VM `vm` ([`Mac::default_for`]).
    pub const fn default_for(vm: u16, nic: u8) -> Self {
        Self(Mac::default_for(vm, nic).octets())
    }

    /// The address of VM `vm`'s card: `given`, from its description (`mac = "..."`), else
    /// [`Self::default_for`] its id.
    pub fn for_vm(vm: u16, given: Option<Mac>) -> Self {
        given.map_or(Self::default_for(vm, 0), Self::from)
    }

    /// Group (multicast or broadcast) addresses have bit 0 of the first octet set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
}

impl From<Mac> for MacAddr {
    fn from(mac: Mac) -> Self {
        Self(mac.octets())
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Why a frame was not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    /// The backend has no room now.
    Busy,
    /// The frame is not one the backend can carry.
    BadFrame,
    /// The host device failed.
    Io,
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Busy => "backend busy",
            Self::BadFrame => "bad frame",
            Self::Io => "I/O error",
        })
    }
}

/// Where transmitted frames go: the machine's network card, or a port of a [`super::switch`].
pub trait NetBackend {
    /// Sends one Ethernet frame (no virtio header).
    fn send(&mut self, frame: &[u8]) -> Result<(), NetError>;
}

/// Counters of the device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Frames the backend took.
    pub tx_frames: u64,
    /// Frames the guest sent that were dropped: too short, too long, or refused by the backend.
    pub tx_dropped: u64,
    /// Frames delivered to the guest.
    pub rx_frames: u64,
    /// Frames dropped on the way in: the ring was full, the frame too long, or the guest's
    /// buffer too small.
    pub rx_dropped: u64,
}

/// A bounded ring of preallocated frame slots.
#[derive(Debug)]
struct FrameRing {
    slots: Vec<[u8; MAX_FRAME]>,
    lens: [usize; RX_SLOTS],
    head: usize,
    len: usize,
}

impl FrameRing {
    fn new() -> Self {
        Self {
            slots: vec![[0; MAX_FRAME]; RX_SLOTS],
            lens: [0; RX_SLOTS],
            head: 0,
            len: 0,
        }
    }

    fn push(&mut self, frame: &[u8]) -> bool {
        if self.len == RX_SLOTS || frame.len() > MAX_FRAME {
            return false;
        }
        let i = (self.head + self.len) % RX_SLOTS;
        match (self.slots.get_mut(i), self.lens.get_mut(i)) {
            (Some(slot), Some(len)) => {
                if let Some(s) = slot.get_mut(..frame.len()) {
                    s.copy_from_slice(frame);
                }
                *len = frame.len();
                self.len += 1;
                true
            }
            _ => false,
        }
    }

    fn front(&self) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let len = *self.lens.get(self.head)?;
        self.slots.get(self.head)?.get(..len)
    }

    fn pop(&mut self) {
        if self.len > 0 {
            self.head = (self.head + 1) % RX_SLOTS;
            self.len -= 1;
        }
    }
}

/// A virtio-net device.
#[derive(Debug)]
pub struct VirtioNet<B> {
    backend: B,
    mac: MacAddr,
    link_up: bool,
    config_changed: bool,
    rx: FrameRing,
    tx_scratch: Vec<u8>,
    stats: NetStats,
    /// Queue pairs offered; more than one offers MQ and the control queue.
    max_pairs: u16,
    /// MQ and CTRL_VQ as negotiated.
    mq: bool,
    ctrl_vq: bool,
    /// Queue pairs the driver enabled (1 after a reset).
    pairs: u16,
    queue_sizes: [u16; MAX_QUEUES],
}

impl<B: NetBackend> VirtioNet<B> {
    /// A card with address `mac` (see [`MacAddr::default_for`]) sending through `backend`,
    /// with one queue pair and no control queue; the link is up.
    pub fn new(backend: B, mac: MacAddr) -> Self {
        Self::with_queue_pairs(backend, mac, 1)
    }

    /// As [`Self::new`], with `pairs` queue pairs (1..=[`MAX_QUEUE_PAIRS`], clamped to it):
    /// with more than one the card offers VIRTIO_NET_F_MQ and the control queue.
    pub fn with_queue_pairs(backend: B, mac: MacAddr, pairs: u16) -> Self {
        Self {
            backend,
            mac,
            link_up: true,
            config_changed: false,
            rx: FrameRing::new(),
            tx_scratch: vec![0; HEADER_BYTES + MAX_FRAME],
            stats: NetStats::default(),
            max_pairs: pairs.clamp(1, MAX_QUEUE_PAIRS),
            mq: false,
            ctrl_vq: false,
            pairs: 1,
            queue_sizes: [QUEUE_SIZE; MAX_QUEUES],
        }
    }

    /// The queue pairs the driver enabled.
    pub fn queue_pairs(&self) -> u16 {
        self.pairs
    }

    /// What queue `q` is for: the pairs the driver may use (all offered with MQ, one without),
    /// then the control queue if negotiated.
    fn role(&self, q: u16) -> Role {
        let pairs = if self.mq { self.max_pairs } else { 1 };
        if q < 2 * pairs {
            if q.is_multiple_of(2) {
                Role::Receive(q / 2)
            } else {
                Role::Transmit(q / 2)
            }
        } else if q == 2 * pairs && self.ctrl_vq {
            Role::Control
        } else {
            Role::Unused
        }
    }

    /// The card's address.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// The backend, mutably.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// The counters.
    pub fn stats(&self) -> NetStats {
        self.stats
    }

    /// Sets the link status; the guest gets a configuration-change interrupt.
    pub fn set_link_up(&mut self, up: bool) {
        if self.link_up != up {
            self.link_up = up;
            self.config_changed = true;
        }
    }

    /// Queues a received Ethernet frame for the guest; `false` (and a count in `rx_dropped`)
    /// if the ring is full or the frame too long. Call [`super::MmioTransport::poll`] to
    /// deliver.
    pub fn inject_rx(&mut self, frame: &[u8]) -> bool {
        let ok = self.rx.push(frame);
        if !ok {
            self.stats.rx_dropped += 1;
        }
        ok
    }

    /// Received frames waiting for guest buffers.
    pub fn rx_pending(&self) -> usize {
        self.rx.len
    }

    fn transmit(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        while let Some(chain) = q.pop(mem)? {
            let lens = chain.lengths();
            let total = usize::try_from(lens.readable).unwrap_or(usize::MAX);
            if total < HEADER_BYTES || total > self.tx_scratch.len() {
                self.stats.tx_dropped += 1;
            } else {
                let buf = self.tx_scratch.get_mut(..total).unwrap_or_default();
                let n = chain.reader().read(mem, buf)?;
                let frame = buf.get(HEADER_BYTES..n).unwrap_or_default();
                match self.backend.send(frame) {
                    Ok(()) => self.stats.tx_frames += 1,
                    Err(_) => self.stats.tx_dropped += 1,
                }
            }
            q.add_used(mem, chain.head(), 0)?;
        }
        Ok(())
    }

    /// Delivers the waiting frames, each to the receive queue of its flow's pair; stops at the
    /// first whose queue has no buffer (frames stay in order).
    fn receive(
        &mut self,
        queues: &mut [Queue],
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        while let Some(frame) = self.rx.front() {
            let index = usize::from(2 * super::flow::pair(frame, self.pairs));
            let Some(q) = queues.get_mut(index) else {
                break;
            };
            let Some(chain) = q.pop(mem)? else {
                break;
            };
            let lens = chain.lengths();
            let need = (HEADER_BYTES + frame.len()) as u64;
            if lens.writable < need {
                // §5.1.6.3.1 asks for buffers of at least 1526 bytes; this one cannot hold the
                // frame. Drop the frame and leave the buffer for the next one.
                q.undo_pop();
                self.rx.pop();
                self.stats.rx_dropped += 1;
                // Don't spin on a ring of tiny buffers: try again at the next poll.
                break;
            }
            let mut header = [0u8; HEADER_BYTES];
            header[NUM_BUFFERS..NUM_BUFFERS + 2].copy_from_slice(&1u16.to_le_bytes());
            let mut writer = chain.writer();
            writer.write(mem, &header)?;
            writer.write(mem, frame)?;
            q.add_used(mem, chain.head(), need as u32)?;
            self.rx.pop();
            self.stats.rx_frames += 1;
        }
        Ok(())
    }

    /// Answers the control commands on `q`. A chain with no command or no room for the ack
    /// cannot be answered: the device needs a reset.
    fn control(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        while let Some(chain) = q.pop(mem)? {
            let lens = chain.lengths();
            if lens.writable == 0 || lens.readable < 2 {
                return Err(QueueError::MalformedRequest);
            }
            let mut cmd = [0u8; ctrl::PAIRS_SET_BYTES];
            let n = chain.reader().read(mem, &mut cmd)?;
            let [class, command, p0, p1] = cmd;
            let pairs = u16::from_le_bytes([p0, p1]);
            let ack = if self.mq
                && class == ctrl::CLASS_MQ
                && command == ctrl::MQ_VQ_PAIRS_SET
                && lens.readable == ctrl::PAIRS_SET_BYTES as u64
                && n == ctrl::PAIRS_SET_BYTES
                && (1..=self.max_pairs).contains(&pairs)
            {
                self.pairs = pairs;
                ctrl::OK
            } else {
                ctrl::ERR
            };
            chain.writer().write(mem, &[ack])?;
            q.add_used(mem, chain.head(), 1)?;
        }
        Ok(())
    }
}

impl<B: NetBackend> VirtioDevice for VirtioNet<B> {
    fn device_id(&self) -> u32 {
        device_id::NET
    }

    fn device_features(&self) -> u64 {
        let f = feature::MAC | feature::STATUS;
        if self.max_pairs > 1 {
            f | feature::CTRL_VQ | feature::MQ
        } else {
            f
        }
    }

    /// The pairs, then the control queue if there are several pairs.
    fn queue_max_sizes(&self) -> &[u16] {
        let n = if self.max_pairs > 1 {
            2 * usize::from(self.max_pairs) + 1
        } else {
            2
        };
        self.queue_sizes.get(..n).unwrap_or(&self.queue_sizes)
    }

    /// §5.1.4: `u8 mac[6]; le16 status; le16 max_virtqueue_pairs; le16 mtu; ...`; the fields
    /// of features not offered read as zero. The driver cannot write the MAC (no
    /// VIRTIO_NET_F_CTRL_MAC_ADDR), so writes are ignored.
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut c = [0u8; 10];
        c[..6].copy_from_slice(&self.mac.0);
        let status = if self.link_up { LINK_UP } else { 0 };
        c[6..8].copy_from_slice(&status.to_le_bytes());
        c[8..10].copy_from_slice(&self.max_pairs.to_le_bytes());
        read_config_bytes(&c, offset, data);
    }

    fn activate(&mut self, features: u64) {
        self.mq = features & feature::MQ != 0;
        self.ctrl_vq = features & feature::CTRL_VQ != 0;
        self.pairs = 1;
    }

    fn process(
        &mut self,
        queue: u16,
        queues: &mut [Queue],
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        let role = self.role(queue);
        if let Some(q) = queues.get_mut(usize::from(queue)) {
            match role {
                Role::Transmit(_) => self.transmit(q, mem)?,
                Role::Control => self.control(q, mem)?,
                Role::Receive(_) | Role::Unused => {}
            }
        }
        self.poll(queues, mem)
    }

    fn poll(&mut self, queues: &mut [Queue], mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        self.receive(queues, mem)
    }

    /// Back to one pair and no control queue. Frames already queued for the guest are kept
    /// for after the reset.
    fn reset(&mut self) {
        self.mq = false;
        self.ctrl_vq = false;
        self.pairs = 1;
    }

    fn take_config_changed(&mut self) -> bool {
        core::mem::take(&mut self.config_changed)
    }
}
