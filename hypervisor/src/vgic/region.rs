//! Register-region tables: each frame (GICD, GICR RD_base, GICR SGI_base) is a list of
//! (offset range, access widths, handlers), and every access is checked here, in one place,
//! before a handler sees it (the shape of KVM's `vgic_register_region`).

use super::{Kick, Vgic};

/// A region of per-interrupt bit fields (IGROUPR, ISENABLER, IPRIORITYR...), served by the
/// invoking module's `irq_read` / `irq_write` (the distributor's SPIs or a redistributor's
/// SGIs and PPIs).
macro_rules! irq_region {
    ($start:expr, $len:expr, $widths:expr, $field:expr) => {
        Region {
            start: $start,
            len: $len,
            widths: $widths,
            read: |vgic, who, off, size| irq_read(vgic, who, $field, off, size),
            write: |vgic, who, off, size, value| irq_write(vgic, who, $field, off, size, value),
        }
    };
}
pub(super) use irq_region;

/// Access sizes (in bytes) a region accepts; the bit for `n` bytes is `n` itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Widths(u8);

impl Widths {
    /// 32-bit only (most GIC registers, IHI 0069 12.1.3).
    pub const W32: Self = Self(4);
    /// Byte or word (IPRIORITYR, ITARGETSR).
    pub const B_W32: Self = Self(1 | 4);
    /// 64-bit, or 32-bit halves (IROUTER, GICR_TYPER).
    pub const W32_W64: Self = Self(4 | 8);

    const fn allows(self, size: u8) -> bool {
        self.0 & size != 0
    }
}

/// Reads `size` bytes at `offset` bytes into the region; `C` says whose view (the
/// accessor for GICD, the frame's vCPU for GICR).
pub type ReadFn<C> = fn(&Vgic, C, u64, u8) -> u64;
/// Writes `size` bytes of `value` at `offset` bytes into the region.
pub type WriteFn<C> = fn(&Vgic, C, u64, u8, u64) -> Kick;

/// One register or register array of a frame.
pub struct Region<C> {
    /// Offset of the first byte in the frame.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// Access sizes allowed; others read as zero and are ignored.
    pub widths: Widths,
    /// Read handler.
    pub read: ReadFn<C>,
    /// Write handler.
    pub write: WriteFn<C>,
}

/// The region an access hits, if the access is one the region accepts: a size of 1, 2, 4 or
/// 8 bytes, naturally aligned, allowed by the region, and wholly inside it.
fn find<C>(table: &[Region<C>], offset: u64, size: u8) -> Option<&Region<C>> {
    if !matches!(size, 1 | 2 | 4 | 8) || !offset.is_multiple_of(u64::from(size)) {
        return None;
    }
    let region = table
        .iter()
        .find(|r| offset >= r.start && offset - r.start < r.len)?;
    let end = offset - region.start + u64::from(size);
    (region.widths.allows(size) && end <= region.len).then_some(region)
}

/// Dispatches a read; anything the table does not accept reads as zero.
pub fn read<C>(table: &[Region<C>], vgic: &Vgic, ctx: C, offset: u64, size: u8) -> u64 {
    match find(table, offset, size) {
        Some(r) => (r.read)(vgic, ctx, offset - r.start, size),
        None => 0,
    }
}

/// Dispatches a write; anything the table does not accept is ignored.
pub fn write<C>(
    table: &[Region<C>],
    vgic: &Vgic,
    ctx: C,
    offset: u64,
    size: u8,
    value: u64,
) -> Kick {
    match find(table, offset, size) {
        Some(r) => (r.write)(vgic, ctx, offset - r.start, size, value),
        None => Kick::none(),
    }
}

/// Read handler for RAZ registers.
pub fn raz<C>(_: &Vgic, _: C, _: u64, _: u8) -> u64 {
    0
}

/// Write handler for WI registers.
pub fn wi<C>(_: &Vgic, _: C, _: u64, _: u8, _: u64) -> Kick {
    Kick::none()
}

/// The value of a `size`-byte read at byte `offset` of a 64-bit register `reg` (for the
/// 32-bit halves of 64-bit registers).
pub fn slice64(reg: u64, offset: u64, size: u8) -> u64 {
    let shift = (offset % 8) * 8;
    let value = reg >> shift;
    if size >= 8 {
        value
    } else {
        value & ((1u64 << (u32::from(size) * 8)) - 1)
    }
}

/// `reg` with the `size` bytes at byte `offset` replaced by `value` (a 32-bit half write).
pub fn merge64(reg: u64, offset: u64, size: u8, value: u64) -> u64 {
    if size >= 8 {
        return value;
    }
    let shift = (offset % 8) * 8;
    let mask = ((1u64 << (u32::from(size) * 8)) - 1) << shift;
    (reg & !mask) | ((value << shift) & mask)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r7(_: &Vgic, _: (), _: u64, _: u8) -> u64 {
        7
    }

    const TABLE: &[Region<()>] = &[
        Region {
            start: 0x10,
            len: 8,
            widths: Widths::W32,
            read: r7,
            write: wi,
        },
        Region {
            start: 0x20,
            len: 8,
            widths: Widths::W32_W64,
            read: r7,
            write: wi,
        },
    ];

    fn read(table: &[Region<()>], _: &(), offset: u64, size: u8) -> u64 {
        super::read(table, &Vgic::new(1), (), offset, size)
    }

    #[test]
    fn accesses_are_checked_in_one_place() {
        assert_eq!(read(TABLE, &(), 0x10, 4), 7);
        assert_eq!(read(TABLE, &(), 0x14, 4), 7);
        assert_eq!(
            read(TABLE, &(), 0x10, 1),
            0,
            "byte access to a word register"
        );
        assert_eq!(read(TABLE, &(), 0x12, 4), 0, "misaligned");
        assert_eq!(
            read(TABLE, &(), 0x10, 8),
            0,
            "doubleword to a word register"
        );
        assert_eq!(read(TABLE, &(), 0x20, 8), 7);
        assert_eq!(read(TABLE, &(), 0x24, 4), 7);
        assert_eq!(read(TABLE, &(), 0x20, 3), 0, "odd size");
        assert_eq!(read(TABLE, &(), 0x30, 4), 0, "unknown offset");
    }

    #[test]
    fn halves_of_64_bit_registers() {
        assert_eq!(slice64(0x1122_3344_5566_7788, 4, 4), 0x1122_3344);
        assert_eq!(slice64(0x1122_3344_5566_7788, 0, 4), 0x5566_7788);
        assert_eq!(
            merge64(0x1122_3344_5566_7788, 4, 4, 0xaabb_ccdd),
            0xaabb_ccdd_5566_7788
        );
        assert_eq!(merge64(0x1122_3344_5566_7788, 0, 8, 5), 5);
    }
}
