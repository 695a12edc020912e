//! The CPU's ID registers, as the core reads them to answer a guest's trapped reads and to
//! learn which features it must switch or trap.

use crate::arch::regs::read_sysreg;

/// Reads the ID register `S3_0_C0_C<crm>_<op2>` (CRm 1..=7: the space HCR_EL2.TID3 traps;
/// unallocated encodings there read as zero). Anything else reads as zero.
#[inline]
pub fn read(crm: u8, op2: u8) -> u64 {
    macro_rules! id_regs {
        ($($crm:literal: $($op2:literal)*;)*) => {
            match (crm, op2) {
                $($(($crm, $op2) => read_sysreg!(concat!("s3_0_c0_c", $crm, "_", $op2)),)*)*
                _ => 0,
            }
        };
    }
    id_regs! {
        1: 0 1 2 3 4 5 6 7;
        2: 0 1 2 3 4 5 6 7;
        3: 0 1 2 3 4 5 6 7;
        4: 0 1 2 3 4 5 6 7;
        5: 0 1 2 3 4 5 6 7;
        6: 0 1 2 3 4 5 6 7;
        7: 0 1 2 3 4 5 6 7;
    }
}
