//! ESR_EL1 as a test guest reads it after an exception, and what a case expects of it
//! (Arm ARM DDI 0487, "ESR_EL1, Exception Syndrome Register (EL1)"; ISS encodings for an
//! exception from a Data Abort / Instruction Abort).

use core::fmt;

use tock_registers::{register_bitfields, LocalRegisterCopy};

register_bitfields! {u64,
    /// ESR_EL1's top-level fields.
    pub ESR [
        /// Exception Class.
        EC OFFSET(26) NUMBITS(6) [],
        /// Instruction Length: 1 for a 32-bit instruction.
        IL OFFSET(25) NUMBITS(1) [],
        /// Instruction Specific Syndrome.
        ISS OFFSET(0) NUMBITS(25) []
    ],
    /// ISS of a Data Abort or Instruction Abort (the fields a test guest checks).
    pub ISS_ABORT [
        /// Instruction Syndrome Valid (data aborts only).
        ISV OFFSET(24) NUMBITS(1) [],
        /// Write not Read (data aborts only).
        WNR OFFSET(6) NUMBITS(1) [],
        /// Data/Instruction Fault Status Code.
        FSC OFFSET(0) NUMBITS(6) []
    ]
}

/// Exception Classes the guests expect.
pub mod ec {
    /// Unknown reason: an UNDEFINED instruction.
    pub const UNKNOWN: u8 = 0x00;
    /// Instruction Abort taken without a change in Exception level.
    pub const IABT_SAME: u8 = 0x21;
    /// Data Abort taken without a change in Exception level.
    pub const DABT_SAME: u8 = 0x25;
}

/// Fault status codes.
pub mod fsc {
    /// Synchronous external abort, not on a translation table walk: what rhyve injects.
    pub const SYNC_EXTERNAL: u8 = 0x10;
    /// Alignment fault.
    pub const ALIGNMENT: u8 = 0x21;
}

/// A decoded ESR_EL1 value.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Syndrome(pub u64);

impl Syndrome {
    fn esr(self) -> LocalRegisterCopy<u64, ESR::Register> {
        LocalRegisterCopy::new(self.0)
    }
    fn iss(self) -> LocalRegisterCopy<u64, ISS_ABORT::Register> {
        LocalRegisterCopy::new(self.esr().read(ESR::ISS))
    }
    /// The exception class.
    pub fn ec(self) -> u8 {
        self.esr().read(ESR::EC) as u8
    }
    /// Whether this is an abort (data or instruction, from any EL).
    pub fn is_abort(self) -> bool {
        matches!(self.ec(), 0x20 | 0x21 | 0x24 | 0x25)
    }
    /// The fault status code of an abort.
    pub fn fsc(self) -> u8 {
        self.iss().read(ISS_ABORT::FSC) as u8
    }
    /// WnR of a data abort.
    pub fn wnr(self) -> bool {
        self.iss().is_set(ISS_ABORT::WNR)
    }
    /// ISV of a data abort.
    pub fn isv(self) -> bool {
        self.iss().is_set(ISS_ABORT::ISV)
    }
}

impl fmt::Debug for Syndrome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "esr={:#x} ec={:#04x}", self.0, self.ec())?;
        if self.is_abort() {
            write!(f, " fsc={:#04x} wnr={}", self.fsc(), u8::from(self.wnr()))?;
        }
        Ok(())
    }
}

/// One synchronous exception the guest took while expecting one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trap {
    /// ESR_EL1.
    pub esr: Syndrome,
    /// FAR_EL1 (meaningful for aborts).
    pub far: u64,
    /// ELR_EL1: the faulting instruction.
    pub elr: u64,
}

/// What a case expects of the exception it provokes. `None` fields are not checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// Exception class.
    pub ec: u8,
    /// Fault status code (aborts).
    pub fsc: Option<u8>,
    /// Write not Read (data aborts).
    pub wnr: Option<bool>,
    /// FAR_EL1.
    pub far: Option<u64>,
}

impl Expect {
    /// The data abort rhyve injects for an access to `va` (a read unless `write`).
    pub const fn injected_dabt(va: u64, write: bool) -> Self {
        Self {
            ec: ec::DABT_SAME,
            fsc: Some(fsc::SYNC_EXTERNAL),
            wnr: Some(write),
            far: Some(va),
        }
    }
    /// The instruction abort rhyve injects for a fetch from `va`.
    pub const fn injected_iabt(va: u64) -> Self {
        Self {
            ec: ec::IABT_SAME,
            fsc: Some(fsc::SYNC_EXTERNAL),
            wnr: None,
            far: Some(va),
        }
    }
    /// Any data abort taken at EL1, whichever fault code (the CPU's own answer).
    pub const fn any_dabt() -> Self {
        Self {
            ec: ec::DABT_SAME,
            fsc: None,
            wnr: None,
            far: None,
        }
    }
    /// An UNDEFINED instruction.
    pub const fn undef() -> Self {
        Self {
            ec: ec::UNKNOWN,
            fsc: None,
            wnr: None,
            far: None,
        }
    }

    /// Checks `got` (what the guest took, if anything); on a mismatch, says which field.
    pub fn check(&self, got: Option<Trap>) -> Result<(), Mismatch> {
        let Some(t) = got else {
            return Err(Mismatch::NoException);
        };
        if t.esr.ec() != self.ec {
            return Err(Mismatch::Ec);
        }
        if self.fsc.is_some_and(|f| f != t.esr.fsc()) {
            return Err(Mismatch::Fsc);
        }
        if self.wnr.is_some_and(|w| w != t.esr.wnr()) {
            return Err(Mismatch::Wnr);
        }
        if self.far.is_some_and(|f| f != t.far) {
            return Err(Mismatch::Far);
        }
        Ok(())
    }
}

/// Why an exception did not match its [`Expect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// The access completed without an exception.
    NoException,
    /// Wrong exception class.
    Ec,
    /// Wrong fault status code.
    Fsc,
    /// Wrong direction.
    Wnr,
    /// Wrong faulting address.
    Far,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoException => "no exception",
            Self::Ec => "wrong EC",
            Self::Fsc => "wrong fault status code",
            Self::Wnr => "wrong WnR",
            Self::Far => "wrong FAR",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trap(esr: u64, far: u64) -> Option<Trap> {
        Some(Trap {
            esr: Syndrome(esr),
            far,
            elr: 0x4008_0000,
        })
    }

    #[test]
    fn decodes_an_injected_data_abort() {
        // EC 0x25, IL, ISS: WnR, DFSC 0x10 (what rhyve injects for a store).
        let s = Syndrome(0x9600_0050);
        assert_eq!(s.ec(), ec::DABT_SAME);
        assert_eq!(s.fsc(), fsc::SYNC_EXTERNAL);
        assert!(s.wnr());
        assert!(!s.isv());
        assert!(s.is_abort());
        assert_eq!(format!("{s:?}"), "esr=0x96000050 ec=0x25 fsc=0x10 wnr=1");
    }

    #[test]
    fn undef_has_no_abort_fields_in_its_detail() {
        assert_eq!(
            format!("{:?}", Syndrome(0x0200_0000)),
            "esr=0x2000000 ec=0x00"
        );
    }

    #[test]
    fn expectations_name_the_first_mismatch() {
        let e = Expect::injected_dabt(0x1000, true);
        assert_eq!(e.check(trap(0x9600_0050, 0x1000)), Ok(()));
        assert_eq!(e.check(None), Err(Mismatch::NoException));
        assert_eq!(e.check(trap(0x0200_0000, 0x1000)), Err(Mismatch::Ec));
        assert_eq!(e.check(trap(0x9600_0061, 0x1000)), Err(Mismatch::Fsc));
        assert_eq!(e.check(trap(0x9600_0010, 0x1000)), Err(Mismatch::Wnr));
        assert_eq!(e.check(trap(0x9600_0050, 0x1008)), Err(Mismatch::Far));
        assert_eq!(Expect::any_dabt().check(trap(0x9600_0000, 7)), Ok(()));
        assert_eq!(
            Expect::injected_iabt(0xa00_0000).check(trap(0x8600_0010, 0xa00_0000)),
            Ok(())
        );
        assert_eq!(Expect::undef().check(trap(0x0200_0000, 0)), Ok(()));
    }
}
