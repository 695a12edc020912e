//! Rate-limited warnings: a guest must not be able to flood the console by misbehaving.

use core::fmt;
use core::sync::atomic::{AtomicU32, Ordering};

/// How many warnings of one kind are printed, by default, before the rest are counted
/// silently.
const BURST: u32 = 8;

/// A per-site warning budget.
pub struct RateLimit {
    count: AtomicU32,
    burst: u32,
}

impl RateLimit {
    /// A fresh budget.
    pub const fn new() -> Self {
        Self {
            count: AtomicU32::new(0),
            burst: BURST,
        }
    }

    /// A budget of one warning.
    pub const fn once() -> Self {
        Self {
            count: AtomicU32::new(0),
            burst: 1,
        }
    }

    /// Prints `args` as a warning while this site's budget lasts.
    pub fn warn(&self, args: fmt::Arguments<'_>) {
        let n = self.count.fetch_add(1, Ordering::Relaxed);
        if n < self.burst {
            log::warn!("{args}");
        } else if n == self.burst {
            log::warn!("{args} (further warnings of this kind suppressed)");
        }
    }
}
