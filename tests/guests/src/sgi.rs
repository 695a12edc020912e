//! Values for ICC_SGI1R_EL1 (GICv3 architecture specification, IHI 0069, "ICC_SGI1R_EL1,
//! Interrupt Controller Software Generated Interrupt Group 1 Register").

use tock_registers::{register_bitfields, LocalRegisterCopy};

register_bitfields! {u64,
    /// ICC_SGI1R_EL1 (and ICC_ASGI1R_EL1 / ICC_SGI0R_EL1, which share its layout).
    pub ICC_SGIR [
        /// Affinity level 3 of the targets.
        AFF3 OFFSET(48) NUMBITS(8) [],
        /// Range Selector: the target list names Aff0 values 16·RS..16·RS+15.
        RS OFFSET(44) NUMBITS(4) [],
        /// Interrupt Routing Mode: 1 = every PE but this one.
        IRM OFFSET(40) NUMBITS(1) [],
        /// Affinity level 2 of the targets.
        AFF2 OFFSET(32) NUMBITS(8) [],
        /// The SGI's INTID.
        INTID OFFSET(24) NUMBITS(4) [],
        /// Affinity level 1 of the targets.
        AFF1 OFFSET(16) NUMBITS(8) [],
        /// One bit per Aff0 value in the range.
        TARGET_LIST OFFSET(0) NUMBITS(16) []
    ]
}

/// SGI `intid` to every PE but the writer.
pub fn all_but_self(intid: u8) -> u64 {
    (ICC_SGIR::IRM::SET + ICC_SGIR::INTID.val(u64::from(intid))).value
}

/// SGI `intid` to the Aff0 values in `targets` (bit n = Aff0 16·`rs` + n) under Aff3.Aff2.Aff1
/// = `aff`, with IRM as given (with IRM set, the targets are ignored).
pub fn targeted(intid: u8, irm: bool, rs: u8, aff: [u8; 3], targets: u16) -> u64 {
    let mut r = LocalRegisterCopy::<u64, ICC_SGIR::Register>::new(0);
    r.write(
        ICC_SGIR::INTID.val(u64::from(intid))
            + ICC_SGIR::IRM.val(u64::from(irm))
            + ICC_SGIR::RS.val(u64::from(rs))
            + ICC_SGIR::AFF3.val(u64::from(aff[0]))
            + ICC_SGIR::AFF2.val(u64::from(aff[1]))
            + ICC_SGIR::AFF1.val(u64::from(aff[2]))
            + ICC_SGIR::TARGET_LIST.val(u64::from(targets)),
    );
    r.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_land_where_the_gic_spec_puts_them() {
        assert_eq!(all_but_self(1), 0x0000_0100_0100_0000);
        assert_eq!(
            targeted(0xf, false, 0xf, [0x12, 0x34, 0x56], 0x8001),
            0x0012_f034_0f56_8001
        );
        assert_eq!(targeted(2, false, 0, [0, 0, 0], 1), 0x0200_0001);
        assert_eq!(targeted(0xff, true, 0xff, [0; 3], 0), 0x0000_f100_0f00_0000);
    }
}
