//! The "expect" API and the output protocol: one `RHYVE-TG <class> <case> PASS|FAIL <detail>`
//! line per case, then `RHYVE-TG-DONE <class> pass=N fail=M`, then PSCI SYSTEM_OFF.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

use super::console::line;
use super::exception::trap;
use crate::esr::{Expect, Trap};

static CLASS: spin::Once<&'static str> = spin::Once::new();
static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

fn class() -> &'static str {
    CLASS.get().copied().unwrap_or("unknown")
}

/// The run of one guest's class of cases.
pub struct Tester {
    class: &'static str,
}

impl Tester {
    /// Starts reporting cases of `class`. Call once.
    pub fn new(class: &'static str) -> Self {
        CLASS.call_once(|| class);
        Self { class }
    }

    /// Reports `case` as PASS if `ok`, FAIL otherwise, with `detail`. Returns `ok`.
    pub fn check(&mut self, case: &str, ok: bool, detail: fmt::Arguments) -> bool {
        let verdict = if ok { "PASS" } else { "FAIL" };
        line(format_args!(
            "RHYVE-TG {} {case} {verdict} {detail}",
            self.class
        ));
        if ok {
            PASSED.fetch_add(1, Ordering::Relaxed);
        } else {
            FAILED.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Runs the probe `f`, which must take exactly the exception `e` describes.
    pub fn expect_trap<R>(&mut self, case: &str, e: Expect, f: impl FnOnce() -> R) -> Option<Trap> {
        let (_, t) = trap(f);
        match (e.check(t), t) {
            (Ok(()), Some(t)) => self.check(
                case,
                true,
                format_args!("{:?} far={:#x} elr={:#x}", t.esr, t.far, t.elr),
            ),
            (Err(m), Some(t)) => self.check(
                case,
                false,
                format_args!("{m}: got {:?} far={:#x}; expected {e:?}", t.esr, t.far),
            ),
            (_, None) => self.check(case, false, format_args!("no exception; expected {e:?}")),
        };
        t
    }

    /// Runs the probe `f`, which must complete without an exception and return a value `ok`
    /// accepts (`want` describes it for the report).
    pub fn expect_value(
        &mut self,
        case: &str,
        f: impl FnOnce() -> u64,
        ok: impl FnOnce(u64) -> bool,
        want: &str,
    ) -> Option<u64> {
        let (v, t) = trap(f);
        match t {
            Some(t) => {
                self.check(
                    case,
                    false,
                    format_args!("took {:?} far={:#x}; expected {want}", t.esr, t.far),
                );
                None
            }
            None => {
                let good = ok(v);
                self.check(case, good, format_args!("value={v:#x} (expected {want})"));
                Some(v)
            }
        }
    }

    /// Runs the probe `f`, which must complete without an exception.
    pub fn expect_no_trap(&mut self, case: &str, f: impl FnOnce()) -> bool {
        let ((), t) = trap(f);
        match t {
            Some(t) => self.check(
                case,
                false,
                format_args!("took {:?} far={:#x} elr={:#x}", t.esr, t.far, t.elr),
            ),
            None => self.check(case, true, format_args!("completed, no exception")),
        }
    }

    /// Prints the DONE line and powers the VM off.
    pub fn finish(self) -> ! {
        done()
    }
}

fn done() -> ! {
    line(format_args!(
        "RHYVE-TG-DONE {} pass={} fail={}",
        class(),
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed)
    ));
    super::psci::system_off()
}

/// Ends the run: a FAIL line for what went wrong (an unexpected exception, a panic), the DONE
/// line, SYSTEM_OFF.
pub fn fatal(detail: fmt::Arguments) -> ! {
    line(format_args!("RHYVE-TG {} fatal FAIL {detail}", class()));
    FAILED.fetch_add(1, Ordering::Relaxed);
    done()
}
