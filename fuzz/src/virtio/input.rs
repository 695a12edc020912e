//! The input of the virtio targets: what the guest and the host do, step by step.

use arbitrary::{Arbitrary, Unstructured};
use vmm::virtio::mmio::{offset, CONFIG_OFFSET};

/// A register offset: mostly the frame's registers.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Offset {
    Reg(u8),
    Config(u8),
    Raw(u64),
}

const REGISTERS: [u64; 29] = [
    offset::MAGIC_VALUE,
    offset::VERSION,
    offset::DEVICE_ID,
    offset::VENDOR_ID,
    offset::DEVICE_FEATURES,
    offset::DEVICE_FEATURES_SEL,
    offset::DRIVER_FEATURES,
    offset::DRIVER_FEATURES_SEL,
    offset::QUEUE_SEL,
    offset::QUEUE_NUM_MAX,
    offset::QUEUE_NUM,
    offset::QUEUE_READY,
    offset::QUEUE_NOTIFY,
    offset::INTERRUPT_STATUS,
    offset::INTERRUPT_ACK,
    offset::STATUS,
    offset::QUEUE_DESC_LOW,
    offset::QUEUE_DESC_HIGH,
    offset::QUEUE_DRIVER_LOW,
    offset::QUEUE_DRIVER_HIGH,
    offset::QUEUE_DEVICE_LOW,
    offset::QUEUE_DEVICE_HIGH,
    offset::SHM_SEL,
    offset::SHM_LEN_LOW,
    offset::SHM_LEN_HIGH,
    offset::SHM_BASE_LOW,
    offset::SHM_BASE_HIGH,
    offset::CONFIG_GENERATION,
    0x0f8,
];

impl Offset {
    pub(super) fn get(self) -> u64 {
        match self {
            Self::Reg(i) => REGISTERS[usize::from(i) % REGISTERS.len()],
            Self::Config(i) => CONFIG_OFFSET + u64::from(i),
            Self::Raw(o) => o,
        }
    }
}

/// An access width: mostly the ones the bus makes.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Width {
    W4,
    W1,
    W2,
    W8,
    Raw(u8),
}

impl Width {
    pub(super) fn get(self) -> u8 {
        match self {
            Self::W4 => 4,
            Self::W1 => 1,
            Self::W2 => 2,
            Self::W8 => 8,
            Self::Raw(w) => w,
        }
    }
}

/// A guest-physical address for the driver to use: mostly in the arena.
#[derive(Debug, Clone, Copy)]
pub enum Addr {
    /// In the buffer arena after the standard rings.
    Arena(u16),
    /// Anywhere in RAM.
    Ram(u16),
    /// Inside a ring of a queue (0 descriptors, 1 available, 2 used), to overlap on purpose.
    Ring(u8, u8, u16),
    /// Just below the end of RAM, so a length runs past it.
    End(u8),
    Raw(u64),
}

impl<'a> Arbitrary<'a> for Addr {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.arbitrary::<u8>()? {
            0..=159 => Self::Arena(u.arbitrary()?),
            160..=199 => Self::Ram(u.arbitrary()?),
            200..=224 => Self::Ring(u.arbitrary()?, u.arbitrary()?, u.arbitrary()?),
            225..=239 => Self::End(u.arbitrary()?),
            _ => Self::Raw(u.arbitrary()?),
        })
    }
}

/// A buffer length: mostly one that fits.
#[derive(Debug, Clone, Copy)]
pub enum Len {
    /// As long as what is put in it.
    Auto,
    Small(u8),
    /// Whole 512-byte sectors, plus 0 or 1 byte.
    Sectors(u8, bool),
    Raw(u32),
    Max,
}

impl<'a> Arbitrary<'a> for Len {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(match u.arbitrary::<u8>()? {
            0..=99 => Self::Auto,
            100..=179 => Self::Small(u.arbitrary()?),
            180..=229 => Self::Sectors(u.arbitrary()?, u.arbitrary()?),
            230..=249 => Self::Raw(u.arbitrary()?),
            _ => Self::Max,
        })
    }
}

impl Len {
    pub(super) fn get(self, content: usize) -> u32 {
        match self {
            Self::Auto => content.max(1) as u32,
            Self::Small(n) => u32::from(n),
            Self::Sectors(n, plus) => u32::from(n % 129) * 512 + u32::from(plus),
            Self::Raw(n) => n,
            Self::Max => u32::MAX,
        }
    }
}

/// What the driver puts in a buffer.
#[derive(Arbitrary, Debug, Clone)]
pub enum Content<P> {
    /// Nothing: whatever RAM holds.
    Keep,
    Bytes(Vec<u8>),
    Payload(P),
}

/// One buffer of a chain the driver builds.
#[derive(Arbitrary, Debug, Clone)]
pub struct Segment<P> {
    pub(super) addr: Addr,
    pub(super) len: Len,
    pub(super) writable: bool,
    pub(super) content: Content<P>,
}

/// The feature set a driver accepts.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Features {
    /// These of the offered ones, and VIRTIO_F_VERSION_1.
    Offered(u64),
    /// Anything.
    Raw(u64),
}

#[derive(Arbitrary, Debug, Clone)]
pub enum Op<P, R, E> {
    /// §3.1.1 from reset to DRIVER_OK, the queues at the standard layout with sizes
    /// QueueNumMax >> `shrink`, the ones in `skip` left unset.
    Init {
        features: Features,
        shrink: u8,
        skip: u8,
    },
    Read {
        offset: Offset,
        width: Width,
    },
    Write {
        offset: Offset,
        width: Width,
        value: u64,
    },
    Status(u8),
    Reset,
    /// QueueSel, QueueNum, the three ring addresses, and maybe QueueReady = 1.
    SetupQueue {
        queue: u8,
        size: u32,
        desc: Addr,
        avail: Addr,
        used: Addr,
        ready: bool,
    },
    QueueReady {
        queue: u8,
        ready: u32,
    },
    Notify(u8),
    NotifyRaw(u32),
    Ack(u32),
    Poke {
        addr: Addr,
        bytes: Vec<u8>,
    },
    Fill {
        addr: Addr,
        len: u16,
        byte: u8,
    },
    /// A raw descriptor at `index` of a queue's table.
    Desc {
        queue: u8,
        index: u16,
        addr: Addr,
        len: Len,
        flags: u16,
        next: u16,
    },
    /// `head` at the next slot of a queue's available ring, and the index moved on.
    Publish {
        queue: u8,
        head: u16,
    },
    AvailIdx {
        queue: u8,
        idx: u16,
    },
    UsedEvent {
        queue: u8,
        value: u16,
    },
    AvailFlags {
        queue: u8,
        flags: u16,
    },
    /// A chain written at the queue's next free descriptors (or as an indirect table at
    /// `indirect`), published, and maybe notified.
    Chain {
        queue: u8,
        segments: Vec<Segment<P>>,
        indirect: Option<Addr>,
        notify: bool,
    },
    /// A well-formed request of the device's kind, in fresh arena buffers.
    Request {
        request: R,
        indirect: bool,
        notify: bool,
    },
    Poll,
    Host(E),
}
