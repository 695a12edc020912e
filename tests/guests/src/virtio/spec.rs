//! The numbers of virtio 1.2 (OASIS virtio-v1.2-cs01) a driver needs, as the spec names them.

/// "virt" in little-endian ASCII (§4.2.2, MagicValue).
pub const MAGIC: u32 = 0x7472_6976;
/// The non-legacy virtio-mmio version (§4.2.2, Version).
pub const VERSION: u32 = 2;

/// Register offsets of a virtio-mmio frame (§4.2.2, table 4.1).
pub mod offset {
    pub const MAGIC_VALUE: u64 = 0x000;
    pub const VERSION: u64 = 0x004;
    pub const DEVICE_ID: u64 = 0x008;
    pub const VENDOR_ID: u64 = 0x00c;
    pub const DEVICE_FEATURES: u64 = 0x010;
    pub const DEVICE_FEATURES_SEL: u64 = 0x014;
    pub const DRIVER_FEATURES: u64 = 0x020;
    pub const DRIVER_FEATURES_SEL: u64 = 0x024;
    pub const QUEUE_SEL: u64 = 0x030;
    pub const QUEUE_NUM_MAX: u64 = 0x034;
    pub const QUEUE_NUM: u64 = 0x038;
    pub const QUEUE_READY: u64 = 0x044;
    pub const QUEUE_NOTIFY: u64 = 0x050;
    pub const INTERRUPT_STATUS: u64 = 0x060;
    pub const INTERRUPT_ACK: u64 = 0x064;
    pub const STATUS: u64 = 0x070;
    pub const QUEUE_DESC_LOW: u64 = 0x080;
    pub const QUEUE_DESC_HIGH: u64 = 0x084;
    pub const QUEUE_DRIVER_LOW: u64 = 0x090;
    pub const QUEUE_DRIVER_HIGH: u64 = 0x094;
    pub const QUEUE_DEVICE_LOW: u64 = 0x0a0;
    pub const QUEUE_DEVICE_HIGH: u64 = 0x0a4;
    /// A hole of the frame: no register.
    pub const RESERVED: u64 = 0x0f0;
    pub const CONFIG_GENERATION: u64 = 0x0fc;
    /// The device configuration space.
    pub const CONFIG: u64 = 0x100;
}

/// Device status bits (§2.1).
pub mod status {
    pub const ACKNOWLEDGE: u32 = 1;
    pub const DRIVER: u32 = 2;
    pub const DRIVER_OK: u32 = 4;
    pub const FEATURES_OK: u32 = 8;
    pub const DEVICE_NEEDS_RESET: u32 = 0x40;
}

/// InterruptStatus bits (§4.2.2).
pub mod interrupt {
    /// A used buffer notification.
    pub const USED_BUFFER: u32 = 1;
    /// A configuration change notification.
    pub const CONFIG_CHANGE: u32 = 2;
}

/// Feature bits (§6 and each device's section).
pub mod feature {
    /// §6: indirect descriptors.
    pub const RING_INDIRECT_DESC: u64 = 1 << 28;
    /// §6: virtio 1.x; a non-legacy device refuses a driver without it.
    pub const VERSION_1: u64 = 1 << 32;
    /// §5.2.3: legacy barriers; rhyve's disk does not offer it.
    pub const BLK_BARRIER: u64 = 1 << 0;
    /// §5.2.3: DISCARD.
    pub const BLK_DISCARD: u64 = 1 << 13;
    /// §5.2.3: WRITE_ZEROES.
    pub const BLK_WRITE_ZEROES: u64 = 1 << 14;
    /// §5.1.3: the card has a MAC address in its configuration.
    pub const NET_MAC: u64 = 1 << 5;
    /// §5.1.3: a control queue.
    pub const NET_CTRL_VQ: u64 = 1 << 17;
    /// §5.1.3: several queue pairs.
    pub const NET_MQ: u64 = 1 << 22;
    /// §5.3.3: several console ports and control queues.
    pub const CONSOLE_MULTIPORT: u64 = 1 << 1;
}

/// `struct virtq_desc.flags` (§2.7.5).
pub mod desc_flags {
    pub const NEXT: u16 = 1;
    pub const WRITE: u16 = 2;
    pub const INDIRECT: u16 = 4;
}

/// Device IDs (§5).
pub mod device_id {
    pub const NET: u32 = 1;
    pub const BLOCK: u32 = 2;
    pub const CONSOLE: u32 = 3;
    pub const ENTROPY: u32 = 4;
}

/// virtio-blk requests (§5.2.6).
pub mod blk {
    /// `struct virtio_blk_req` header: `le32 type; le32 reserved; le64 sector`.
    pub const HEADER_BYTES: u32 = 16;
    pub const SECTOR: u32 = 512;
    /// Request types.
    pub const IN: u32 = 0;
    pub const OUT: u32 = 1;
    pub const GET_ID: u32 = 8;
    pub const DISCARD: u32 = 11;
    pub const WRITE_ZEROES: u32 = 13;
    /// Status byte values.
    pub const S_OK: u8 = 0;
    pub const S_IOERR: u8 = 1;
    pub const S_UNSUPP: u8 = 2;
    /// `struct virtio_blk_discard_write_zeroes`: `le64 sector; le32 num_sectors; le32 flags`.
    pub const SEGMENT_BYTES: u32 = 16;
    /// Offset of `capacity` (in 512-byte sectors) in the configuration (§5.2.4).
    pub const CONFIG_CAPACITY: u64 = 0;
}

/// virtio-net (§5.1.6): `struct virtio_net_hdr` with VERSION_1.
pub mod net {
    pub const HEADER_BYTES: u32 = 12;
    /// Queues: receive and transmit of the first pair.
    pub const RX: u16 = 0;
    pub const TX: u16 = 1;
    /// Offset of `max_virtqueue_pairs` in the configuration (§5.1.4).
    pub const CONFIG_MAX_PAIRS: u64 = 8;
    /// The control queue's multiqueue command (§5.1.6.5.5): class, command, le16 pairs.
    pub const CTRL_CLASS_MQ: u8 = 4;
    pub const CTRL_MQ_VQ_PAIRS_SET: u8 = 0;
    pub const CTRL_OK: u8 = 0;
    pub const CTRL_ERR: u8 = 1;
}

/// virtio-console queues (§5.3.2).
pub mod console {
    /// Transmit of port 0.
    pub const TX0: u16 = 1;
    /// Control transmit (driver to device), with MULTIPORT.
    pub const CONTROL_TX: u16 = 3;
    /// Transmit of port 1, with MULTIPORT.
    pub const TX1: u16 = 5;
}
