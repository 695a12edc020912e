//! `pl031`: the PL031 model driven by an arbitrary sequence of guest reads and writes (any
//! offset, any value), polls and steps of the machine's clock (which never goes back), against
//! a shadow of what the TRM says.
//!
//! Invariants, after every step: RTCDR reads the value last loaded plus the seconds since (or
//! the machine's time when nothing was loaded), modulo 2^32; RTCMR and RTCLR read what was
//! written; RTCCR reads as started; RTCIMSC holds bit 0 of the last write; RTCRIS is set
//! exactly once the counter has reached an armed match (armed by writing RTCMR or RTCLR,
//! firing at once when equal) and stays set until a write of bit 0 to RTCICR; RTCMIS and the
//! line are RTCRIS & RTCIMSC; the identification registers read the PrimeCell IDs; every other
//! offset reads 0 and writes change nothing.

use arbitrary::{Arbitrary, Unstructured};
use vmm::pl031::{offset, Clock, Pl031};

const MAX_OPS: usize = 512;

/// The machine's clock, moved by the input.
struct Machine(u64);

impl Clock for Machine {
    fn now(&mut self) -> u64 {
        self.0
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Read(u16),
    Write(u16, u32),
    /// A write to one of the mapped registers (to reach them more often than any offset).
    WriteReg(u8, u32),
    Poll,
    /// The machine's time goes on by this many seconds.
    Tick(u16),
    /// A large step (hours to years).
    Leap(u32),
}

/// What the TRM says the RTC holds.
struct Shadow {
    /// The counter minus the machine's time, modulo 2^32.
    offset: u32,
    mr: u32,
    lr: u32,
    imsc: u32,
    ris: u32,
    /// The machine time at which an armed match fires.
    match_at: Option<u64>,
}

impl Shadow {
    fn count(&self, now: u64) -> u32 {
        (now as u32).wrapping_add(self.offset)
    }

    fn arm(&mut self, now: u64) {
        let ahead = self.mr.wrapping_sub(self.count(now));
        self.match_at = Some(now.saturating_add(u64::from(ahead)));
        self.settle(now);
    }

    fn settle(&mut self, now: u64) {
        if self.match_at.is_some_and(|at| now >= at) {
            self.match_at = None;
            self.ris = 1;
        }
    }

    fn expected_read(&self, off: u64, now: u64) -> u32 {
        const IDS: [u32; 8] = [0x31, 0x10, 0x14, 0x00, 0x0d, 0xf0, 0x05, 0xb1];
        match off {
            offset::DR => self.count(now),
            offset::MR => self.mr,
            offset::LR => self.lr,
            offset::CR => 1,
            offset::IMSC => self.imsc,
            offset::RIS => self.ris,
            offset::MIS => self.ris & self.imsc,
            o if (offset::PERIPH_ID0..offset::PERIPH_ID0 + 32).contains(&o) && o % 4 == 0 => {
                IDS[((o - offset::PERIPH_ID0) / 4) as usize]
            }
            _ => 0,
        }
    }

    fn write(&mut self, off: u64, v: u32, now: u64) {
        match off {
            offset::MR => {
                self.mr = v;
                self.arm(now);
            }
            offset::LR => {
                self.lr = v;
                self.offset = v.wrapping_sub(now as u32);
                self.arm(now);
            }
            offset::IMSC => self.imsc = v & 1,
            offset::ICR if v & 1 != 0 => self.ris = 0,
            _ => {}
        }
    }
}

const REGS: [u64; 8] = [
    offset::DR,
    offset::MR,
    offset::LR,
    offset::CR,
    offset::IMSC,
    offset::RIS,
    offset::MIS,
    offset::ICR,
];

pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let start: u32 = u.arbitrary().unwrap_or(0);
    let mut clock = Machine(u64::from(start));
    let mut rtc = Pl031::new();
    let mut shadow = Shadow {
        offset: 0,
        mr: 0,
        lr: 0,
        imsc: 0,
        ris: 0,
        match_at: None,
    };
    for _ in 0..MAX_OPS {
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        let now = clock.0;
        match op {
            Op::Read(off) => {
                let off = u64::from(off) & 0xfff;
                shadow.settle(now);
                let want = shadow.expected_read(off, now);
                assert_eq!(rtc.read(off, &mut clock), want, "read {off:#x} at {now}");
            }
            Op::Write(off, v) => {
                let off = u64::from(off) & 0xfff;
                shadow.settle(now);
                shadow.write(off, v, now);
                rtc.write(off, v, &mut clock);
            }
            Op::WriteReg(r, v) => {
                let off = REGS[usize::from(r) % REGS.len()];
                shadow.settle(now);
                shadow.write(off, v, now);
                rtc.write(off, v, &mut clock);
            }
            Op::Poll => {
                shadow.settle(now);
                rtc.poll(&mut clock);
            }
            Op::Tick(s) => clock.0 = clock.0.saturating_add(u64::from(s)),
            Op::Leap(s) => clock.0 = clock.0.saturating_add(u64::from(s)),
        }
        // The line is what the model last noticed: the shadow as of the last access.
        assert_eq!(
            rtc.irq_level(),
            shadow.ris & shadow.imsc != 0,
            "line after {op:?}"
        );
        assert_eq!(
            rtc.waiting(),
            shadow.match_at.is_some() && shadow.imsc != 0,
            "waiting after {op:?}"
        );
    }
}
