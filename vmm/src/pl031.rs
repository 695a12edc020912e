//! An ARM PL031 real-time clock (PrimeCell RTC, ARM DDI 0224) as a plain state machine: the
//! guest's time of day at [`abi::layout::PL031_BASE`].
//!
//! The counter is the machine's time of day in seconds ([`Clock`]) plus an offset the guest
//! sets by writing RTCLR, so a guest that sets its clock changes its own clock only, and the
//! time goes on from what it wrote. Like QEMU's model, the counter always runs: RTCCR reads as
//! started and ignores writes (there is no oscillator to stop).
//!
//! The match interrupt (RTCINTR, DDI 0224 §2.2): when the counter reaches RTCMR, RTCRIS is
//! set; the line is RTCRIS & RTCIMSC; writing 1 to RTCICR clears it. A match is armed when
//! RTCMR or RTCLR is written, as the hardware compares on every tick; the counter reaching it
//! is noticed at the next [`Pl031::poll`] or register access, since the model has no timer of
//! its own. A match equal to the counter when armed fires at once.
//!
//! Unknown and unaligned offsets read as 0 and ignore writes; no value a guest writes panics.
//! The state is a plain struct with no pointers, so it can be saved and restored.

use tock_registers::{register_bitfields, LocalRegisterCopy};

/// RTCPeriphID0..3: part number 0x031, designer 0x41 (ARM), revision 1 (DDI 0224 §3.3.10).
const PERIPH_ID: [u8; 4] = [0x31, 0x10, 0x14, 0x00];
/// RTCPCellID0..3: the PrimeCell identification every AMBA device carries (§3.3.11).
const CELL_ID: [u8; 4] = [0x0d, 0xf0, 0x05, 0xb1];

register_bitfields! [u32,
    /// RTCCR, control (§3.3.4).
    CR [
        START OFFSET(0) NUMBITS(1) []
    ],
    /// The interrupt bit, laid out alike in RTCIMSC, RTCRIS, RTCMIS and RTCICR
    /// (§3.3.5 to §3.3.8).
    INT [
        MATCH OFFSET(0) NUMBITS(1) []
    ],
    /// RTCPeriphID0..3 and RTCPCellID0..3: one identification byte each.
    ID [
        BYTE OFFSET(0) NUMBITS(8) []
    ]
];

/// Register offsets (DDI 0224 table 3-1).
pub mod offset {
    /// Data: the counter (read only).
    pub const DR: u64 = 0x000;
    /// Match.
    pub const MR: u64 = 0x004;
    /// Load: sets the counter.
    pub const LR: u64 = 0x008;
    /// Control.
    pub const CR: u64 = 0x00c;
    /// Interrupt mask set/clear.
    pub const IMSC: u64 = 0x010;
    /// Raw interrupt status.
    pub const RIS: u64 = 0x014;
    /// Masked interrupt status.
    pub const MIS: u64 = 0x018;
    /// Interrupt clear (write only).
    pub const ICR: u64 = 0x01c;
    /// RTCPeriphID0; PeriphID1..3 and PCellID0..3 follow at 4-byte steps.
    pub const PERIPH_ID0: u64 = 0xfe0;
    /// RTCPCellID0.
    pub const PCELL_ID0: u64 = 0xff0;
}

/// The machine's time of day.
pub trait Clock {
    /// Seconds since the Unix epoch.
    fn now(&mut self) -> u64;
}

type Reg<R> = LocalRegisterCopy<u32, R>;

/// A PL031's state.
#[derive(Debug, Clone)]
pub struct Pl031 {
    /// What the guest's counter adds to the machine's time (wrapping, as the 32-bit counter).
    offset: u32,
    mr: u32,
    lr: u32,
    imsc: Reg<INT::Register>,
    ris: Reg<INT::Register>,
    /// The machine time (seconds) at which the counter reaches RTCMR, while a match is armed.
    match_at: Option<u64>,
}

impl Default for Pl031 {
    fn default() -> Self {
        Self::new()
    }
}

/// One entry of the register map: where it is, how it reads, how it writes.
struct Register {
    offset: u64,
    read: fn(&mut Pl031, u64) -> u32,
    write: fn(&mut Pl031, u32, u64),
}

fn ignore_write(_: &mut Pl031, _: u32, _: u64) {}

/// The register map. Registers not listed read as 0 and ignore writes. Each handler gets the
/// machine time in seconds.
const REGISTERS: &[Register] = &[
    Register {
        offset: offset::DR,
        read: |s, now| s.count(now),
        write: ignore_write,
    },
    Register {
        offset: offset::MR,
        read: |s, _| s.mr,
        write: |s, v, now| {
            s.mr = v;
            s.arm(now);
        },
    },
    Register {
        offset: offset::LR,
        read: |s, _| s.lr,
        write: |s, v, now| {
            s.lr = v;
            // The counter reads `v` now and runs on from there.
            s.offset = v.wrapping_sub(now as u32);
            s.arm(now);
        },
    },
    Register {
        offset: offset::CR,
        read: |_, _| CR::START::SET.value,
        write: ignore_write,
    },
    Register {
        offset: offset::IMSC,
        read: |s, _| s.imsc.get(),
        write: |s, v, _| s.imsc.write(INT::MATCH.val(INT::MATCH.read(v))),
    },
    Register {
        offset: offset::RIS,
        read: |s, _| s.ris.get(),
        write: ignore_write,
    },
    Register {
        offset: offset::MIS,
        read: |s, _| s.mis(),
        write: ignore_write,
    },
    Register {
        offset: offset::ICR,
        read: |_, _| 0,
        write: |s, v, _| {
            if INT::MATCH.is_set(v) {
                s.ris.modify(INT::MATCH::CLEAR);
            }
        },
    },
];

/// The identification byte at `offset`, if it is one of the ID registers.
fn id_byte(offset: u64) -> Option<u32> {
    let index = offset.checked_sub(offset::PERIPH_ID0)?;
    if index % 4 != 0 {
        return None;
    }
    let i = usize::try_from(index / 4).ok()?;
    let byte = PERIPH_ID.iter().chain(CELL_ID.iter()).nth(i)?;
    Some(ID::BYTE.val(u32::from(*byte)).value)
}

impl Pl031 {
    /// A PL031 at reset: the counter at the machine's time, no match armed, the interrupt
    /// masked.
    pub fn new() -> Self {
        Self {
            offset: 0,
            mr: 0,
            lr: 0,
            imsc: Reg::new(0),
            ris: Reg::new(0),
            match_at: None,
        }
    }

    fn register(offset: u64) -> Option<&'static Register> {
        REGISTERS.iter().find(|r| r.offset == offset)
    }

    /// A guest load from `offset` in the RTC's frame.
    pub fn read(&mut self, offset: u64, clock: &mut dyn Clock) -> u32 {
        let now = clock.now();
        self.check_match(now);
        if let Some(b) = id_byte(offset) {
            return b;
        }
        match Self::register(offset) {
            Some(r) => (r.read)(self, now),
            None => 0,
        }
    }

    /// A guest store of `value` to `offset`.
    pub fn write(&mut self, offset: u64, value: u32, clock: &mut dyn Clock) {
        let now = clock.now();
        self.check_match(now);
        if let Some(r) = Self::register(offset) {
            (r.write)(self, value, now);
        }
    }

    /// Notices a match the counter reached since the last access.
    pub fn poll(&mut self, clock: &mut dyn Clock) {
        if self.match_at.is_some() {
            self.check_match(clock.now());
        }
    }

    /// Whether a match is armed and would raise the line: worth a [`Self::poll`].
    pub fn waiting(&self) -> bool {
        self.match_at.is_some() && self.imsc.is_set(INT::MATCH)
    }

    /// Whether the RTC's interrupt line is asserted (RTCINTR: the masked match).
    pub fn irq_level(&self) -> bool {
        self.mis() != 0
    }

    /// The counter at machine time `now`.
    fn count(&self, now: u64) -> u32 {
        (now as u32).wrapping_add(self.offset)
    }

    /// Arms the match: the counter reaches RTCMR after `mr - count` seconds, wrapping as the
    /// hardware's 32-bit comparison does; at once if they are equal.
    fn arm(&mut self, now: u64) {
        let ahead = self.mr.wrapping_sub(self.count(now));
        self.match_at = Some(now.saturating_add(u64::from(ahead)));
        self.check_match(now);
    }

    fn check_match(&mut self, now: u64) {
        if self.match_at.is_some_and(|at| now >= at) {
            self.match_at = None;
            self.ris.modify(INT::MATCH::SET);
        }
    }

    fn mis(&self) -> u32 {
        self.ris.get() & self.imsc.get()
    }
}

#[cfg(test)]
mod tests {
    use super::offset::*;
    use super::*;
    use alloc::vec::Vec;

    /// A machine clock the test moves by hand.
    struct Fake(u64);

    impl Clock for Fake {
        fn now(&mut self) -> u64 {
            self.0
        }
    }

    const T0: u64 = 1_700_000_000;

    #[test]
    fn id_registers_identify_a_pl031() {
        let mut r = Pl031::new();
        let mut c = Fake(T0);
        let ids: Vec<u32> = (0..8).map(|i| r.read(PERIPH_ID0 + 4 * i, &mut c)).collect();
        assert_eq!(ids, [0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
        // Linux's amba bus assembles them, a byte from each register, and its PL031 driver
        // matches 0x00041031 under mask 0x000fffff (the revision, bits 20..23, aside).
        let word = |b: &[u32]| b.iter().rev().fold(0u32, |acc, x| acc << 8 | x);
        assert_eq!(word(&ids[..4]), 0x0014_1031);
        assert_eq!(word(&ids[..4]) & 0x000f_ffff, 0x0004_1031);
        assert_eq!(word(&ids[4..]), 0xb105_f00d);
        assert_eq!(r.read(PERIPH_ID0 + 1, &mut c), 0, "unaligned");
        assert_eq!(r.read(0x1000, &mut c), 0, "past the frame");
    }

    #[test]
    fn the_counter_is_the_machine_s_time_and_runs() {
        let mut r = Pl031::new();
        let mut c = Fake(T0);
        assert_eq!(r.read(DR, &mut c), T0 as u32);
        c.0 += 5;
        assert_eq!(r.read(DR, &mut c), T0 as u32 + 5);
        assert_eq!(r.read(CR, &mut c), 1, "always started");
        r.write(CR, 0, &mut c);
        assert_eq!(r.read(CR, &mut c), 1, "cannot be stopped");
        r.write(DR, 7, &mut c);
        assert_eq!(r.read(DR, &mut c), T0 as u32 + 5, "DR is read only");
    }

    #[test]
    fn loading_sets_the_time_which_goes_on_from_there() {
        let mut r = Pl031::new();
        let mut c = Fake(T0);
        r.write(LR, 1000, &mut c);
        assert_eq!(r.read(DR, &mut c), 1000);
        assert_eq!(r.read(LR, &mut c), 1000);
        c.0 += 30;
        assert_eq!(r.read(DR, &mut c), 1030);
        // Back and forth across the 32-bit wrap.
        r.write(LR, u32::MAX, &mut c);
        c.0 += 2;
        assert_eq!(r.read(DR, &mut c), 1);
        // A fresh model (a reset VM) is back at the machine's time.
        assert_eq!(Pl031::new().read(DR, &mut c), (T0 + 32) as u32);
    }

    #[test]
    fn a_match_raises_the_line_only_when_unmasked_until_cleared() {
        let mut r = Pl031::new();
        let mut c = Fake(T0);
        r.write(MR, T0 as u32 + 10, &mut c);
        assert_eq!(r.read(MR, &mut c), T0 as u32 + 10);
        c.0 += 9;
        r.poll(&mut c);
        assert_eq!(r.read(RIS, &mut c), 0, "not yet");
        assert!(!r.waiting(), "masked: nothing to wait for");
        c.0 += 1;
        assert_eq!(r.read(RIS, &mut c), 1, "raw status set at the match");
        assert_eq!(r.read(MIS, &mut c), 0);
        assert!(!r.irq_level(), "masked");
        r.write(IMSC, 0xffff_ffff, &mut c);
        assert_eq!(r.read(IMSC, &mut c), 1, "one bit");
        assert!(r.irq_level());
        assert_eq!(r.read(MIS, &mut c), 1);
        r.write(ICR, 0, &mut c);
        assert!(r.irq_level(), "writing 0 clears nothing");
        r.write(ICR, 1, &mut c);
        assert!(!r.irq_level());
        assert_eq!(r.read(RIS, &mut c), 0);
        c.0 += 100;
        r.poll(&mut c);
        assert!(!r.irq_level(), "a match fires once");
    }

    #[test]
    fn a_match_is_noticed_by_poll_and_follows_the_loaded_time() {
        let mut r = Pl031::new();
        let mut c = Fake(T0);
        r.write(IMSC, 1, &mut c);
        r.write(MR, 500, &mut c);
        // 500 is behind the counter: it matches only after the counter wraps.
        c.0 += 1000;
        r.poll(&mut c);
        assert!(!r.irq_level());
        // Load a time just before the match: it fires 3 seconds later.
        r.write(LR, 497, &mut c);
        assert!(r.waiting());
        c.0 += 2;
        r.poll(&mut c);
        assert!(!r.irq_level());
        c.0 += 1;
        r.poll(&mut c);
        assert!(r.irq_level());
        assert!(!r.waiting());
        // A match equal to the counter fires at once.
        r.write(ICR, 1, &mut c);
        let now = r.read(DR, &mut c);
        r.write(MR, now, &mut c);
        assert!(r.irq_level());
    }

    #[test]
    fn no_access_panics() {
        let mut r = Pl031::new();
        let mut c = Fake(u64::MAX);
        for off in (0..0x1010).step_by(1) {
            for v in [0, 1, u32::MAX, 0x8000_0000] {
                r.write(off, v, &mut c);
                let _ = r.read(off, &mut c);
                r.poll(&mut c);
            }
        }
        c.0 = 0;
        r.write(MR, 3, &mut c);
        r.poll(&mut c);
    }
}
