//! Which of the machine's virtio-mmio devices the VMM partition gets to drive.
//!
//! The core drives no virtio device itself. Of the machine's transports it gives the VMM the
//! first block device, the first network card and the first entropy source it finds, and
//! nothing else: an empty transport (QEMU virt lists 32, most of them with device ID 0), a
//! second disk or a device of another type stays unmapped.

use abi::vmm::MAX_HOST_DEVICES;

/// MagicValue of a virtio-mmio frame ("virt", virtio 1.2 §4.2.2).
pub const MAGIC: u32 = 0x7472_6976;
/// Register offsets read to identify a frame (§4.2.2).
pub const MAGIC_OFFSET: u64 = 0x000;
/// Version register.
pub const VERSION_OFFSET: u64 = 0x004;
/// DeviceID register.
pub const DEVICE_ID_OFFSET: u64 = 0x008;

/// Device IDs (§5) the VMM drives.
pub mod device_id {
    /// Network card.
    pub const NET: u32 = 1;
    /// Block device.
    pub const BLOCK: u32 = 2;
    /// Entropy source.
    pub const ENTROPY: u32 = 4;
}

/// The device types given to the VMM, at most one of each.
const WANTED: [u32; 3] = [device_id::BLOCK, device_id::NET, device_id::ENTROPY];

/// A transport as the machine's device tree names it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Transport {
    /// Register frame.
    pub base: u64,
    /// Frame size.
    pub size: u64,
    /// Interrupt (INTID of an SPI), if any.
    pub intid: Option<u32>,
}

/// A device the VMM drives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostDevice {
    /// Its virtio device ID.
    pub device_id: u32,
    /// Its transport.
    pub transport: Transport,
}

/// The devices to give the VMM, in the order found, from `transports` and `read`, which reads
/// a 32-bit register of a frame (`base`, offset). A frame whose magic or version is wrong is
/// skipped (virtio-mmio versions 1 and 2 are both driven).
pub fn select(
    transports: &[Transport],
    mut read: impl FnMut(u64, u64) -> u32,
) -> ([HostDevice; MAX_HOST_DEVICES], usize) {
    let mut out = [HostDevice::default(); MAX_HOST_DEVICES];
    let mut n = 0;
    for t in transports {
        if n == out.len() || t.size < DEVICE_ID_OFFSET + 4 {
            continue;
        }
        if read(t.base, MAGIC_OFFSET) != MAGIC || !matches!(read(t.base, VERSION_OFFSET), 1 | 2) {
            continue;
        }
        let id = read(t.base, DEVICE_ID_OFFSET);
        if !WANTED.contains(&id) || out[..n].iter().any(|d| d.device_id == id) {
            continue;
        }
        out[n] = HostDevice {
            device_id: id,
            transport: *t,
        };
        n += 1;
    }
    (out, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(base: u64) -> Transport {
        Transport {
            base,
            size: 0x200,
            intid: Some(48),
        }
    }

    #[test]
    fn first_of_each_wanted_kind_only() {
        // (base, magic, version, id)
        let frames = [
            (0x1000, MAGIC, 1, 0),
            (0x1200, MAGIC, 1, device_id::BLOCK),
            (0x1400, MAGIC, 2, 9),
            (0x1600, 0xdead, 2, device_id::NET),
            (0x1800, MAGIC, 3, device_id::NET),
            (0x1a00, MAGIC, 2, device_id::BLOCK),
            (0x1c00, MAGIC, 2, device_id::NET),
            (0x1e00, MAGIC, 2, device_id::ENTROPY),
        ];
        let transports: Vec<_> = frames.iter().map(|f| t(f.0)).collect();
        let (devs, n) = select(&transports, |base, off| {
            let f = frames.iter().find(|f| f.0 == base).unwrap();
            match off {
                MAGIC_OFFSET => f.1,
                VERSION_OFFSET => f.2,
                DEVICE_ID_OFFSET => f.3,
                _ => panic!("read of {off:#x}"),
            }
        });
        let picked: Vec<_> = devs[..n]
            .iter()
            .map(|d| (d.transport.base, d.device_id))
            .collect();
        assert_eq!(
            picked,
            [
                (0x1200, device_id::BLOCK),
                (0x1c00, device_id::NET),
                (0x1e00, device_id::ENTROPY)
            ]
        );
    }

    #[test]
    fn a_frame_too_small_is_not_read() {
        let tiny = Transport {
            base: 0x1000,
            size: 8,
            intid: None,
        };
        let (_, n) = select(&[tiny], |_, _| panic!("read a frame too small"));
        assert_eq!(n, 0);
    }
}
