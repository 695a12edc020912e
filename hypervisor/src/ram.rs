//! The machine's free RAM: all of its RAM less what is not the guests' to have (the
//! firmware's reservations, the firmware's tree, rhyve's image, the boot bundle), carved
//! top-down at boot for the heap and the guests' RAM.
//!
//! Plain logic over ranges, so the host tests check that nothing carved ever overlaps a
//! reserved range, whatever the board's banks and holes.

use crate::platform::{Platform, RamRange, MAX_RESERVED};

/// Most free ranges kept: each hole splits one. A range that does not fit is dropped, which
/// loses RAM but never hands out what is not free.
const MAX_FREE: usize = 64;

/// Most ranges [`FreeRam::for_machine`] takes out besides the tree's reservations.
const MAX_OWN: usize = 3;

/// The free ranges of RAM, `[start, end)`.
pub struct FreeRam {
    ranges: [(u64, u64); MAX_FREE],
    len: usize,
}

/// Where rhyve itself is at boot: what [`FreeRam::for_machine`] keeps out besides the tree's
/// reservations.
#[derive(Clone, Copy, Debug)]
pub struct Own {
    /// rhyve's image as loaded (start, size), up to the end of its BSS.
    pub image: (u64, u64),
    /// The firmware's device tree (start, its total size).
    pub tree: (u64, u64),
}

impl FreeRam {
    /// All of `ram`, less every range in `taken` (start, size).
    pub fn new(ram: &[RamRange], taken: &[(u64, u64)]) -> Self {
        let mut f = Self {
            ranges: [(0, 0); MAX_FREE],
            len: 0,
        };
        for r in ram {
            f.add(r.start, r.start.saturating_add(r.size));
        }
        for &(start, size) in taken {
            f.remove(start, start.saturating_add(size));
        }
        f
    }

    /// The machine's RAM less everything that is not free at boot: the tree's
    /// `/memreserve/` and `/reserved-memory` ranges, the tree itself, rhyve's image and the
    /// boot bundle.
    pub fn for_machine(plat: &Platform, own: Own) -> Self {
        let mut taken = [(0, 0); MAX_RESERVED + MAX_OWN];
        let mut n = 0;
        let bundle = plat.bundle.map(|(s, e)| (s, e.saturating_sub(s)));
        for r in [Some(own.image), Some(own.tree), bundle]
            .into_iter()
            .flatten()
            .chain(plat.reserved.as_slice().iter().copied())
        {
            taken[n] = r;
            n += 1;
        }
        Self::new(plat.ram.as_slice(), &taken[..n])
    }

    fn add(&mut self, start: u64, end: u64) {
        if end > start && self.len < MAX_FREE {
            self.ranges[self.len] = (start, end);
            self.len += 1;
        }
    }

    fn remove(&mut self, start: u64, end: u64) {
        let mut i = 0;
        while i < self.len {
            let (s, e) = self.ranges[i];
            if end <= s || start >= e {
                i += 1;
                continue;
            }
            // Split [s, e) around [start, end).
            self.ranges[i] = self.ranges[self.len - 1];
            self.len -= 1;
            self.add(s, start.max(s).min(e));
            self.add(end.min(e).max(s), e);
        }
    }

    /// Keeps `[start, start + size)` out of what is handed out.
    pub fn reserve(&mut self, start: u64, size: u64) {
        self.remove(start, start.saturating_add(size));
    }

    /// The free ranges, `[start, end)`, in no order.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges[..self.len]
    }

    /// Takes `size` bytes aligned to `align` (a power of two) from the highest free range that
    /// has room.
    pub fn carve(&mut self, size: u64, align: u64) -> Option<u64> {
        let mut best: Option<(usize, u64)> = None;
        for (i, &(s, e)) in self.ranges[..self.len].iter().enumerate() {
            let Some(top) = e.checked_sub(size) else {
                continue;
            };
            let base = top & !(align - 1);
            if base >= s && best.is_none_or(|(_, b)| base > b) {
                best = Some((i, base));
            }
        }
        let (_, base) = best?;
        self.remove(base, base + size);
        Some(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    const MIB: u64 = 1 << 20;

    fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
        a.0 < b.0.saturating_add(b.1) && b.0 < a.0.saturating_add(a.1)
    }

    /// Carves `size` blocks until none is left; checks each is in RAM, clear of `taken` and
    /// of the others; returns them.
    fn carve_all(ram: &[RamRange], taken: &[(u64, u64)], size: u64) -> Vec<u64> {
        let mut f = FreeRam::new(ram, taken);
        let mut got: Vec<u64> = Vec::new();
        while let Some(base) = f.carve(size, 2 * MIB) {
            assert_eq!(base % (2 * MIB), 0);
            assert!(
                ram.iter()
                    .any(|r| base >= r.start && base + size <= r.start + r.size),
                "{base:#x} outside RAM"
            );
            for &t in taken {
                assert!(!overlaps((base, size), t), "{base:#x} overlaps {t:x?}");
            }
            for &g in &got {
                assert!(!overlaps((base, size), (g, size)), "{base:#x} carved twice");
            }
            got.push(base);
        }
        got
    }

    #[test]
    fn carving_two_banks_around_holes_never_touches_them() {
        // i.MX8MP-like: 3 GiB under 4 GiB and 3 GiB above, a DSP carve-out, a TF-A
        // /memreserve/, and rhyve's own things.
        let ram = [
            RamRange {
                start: 0x4000_0000,
                size: 0xc000_0000,
            },
            RamRange {
                start: 0x1_0000_0000,
                size: 0xc000_0000,
            },
        ];
        let taken = [
            (0x9240_0000, 0x200_0000),
            (0x4000_0000, 0x1_0000),
            (0x4020_0000, 0x60_0000),
            (0x4800_0000, 0x1000),
            (0x1_7fff_f000, 0x3000),
        ];
        let got = carve_all(&ram, &taken, 64 * MIB);
        // Highest first: the first comes from the top of the upper bank.
        assert_eq!(got[0], 0x1_c000_0000 - 64 * MIB);
        // Everything but the holes' 64 MiB neighbourhoods is used.
        assert!(got.len() as u64 * 64 * MIB > 0x1_8000_0000 - 6 * 64 * MIB);
    }

    #[test]
    fn a_hole_at_every_place_in_a_range() {
        let ram = [RamRange {
            start: 0x8000_0000,
            size: 64 * MIB,
        }];
        for hole in [
            (0x8000_0000, MIB),
            (0x8000_0000 + 63 * MIB, MIB),
            (0x8000_0000 + 20 * MIB, 3),
            (0x7000_0000, 0x1000_0000 + MIB),
            (0x8000_0000 + 63 * MIB, u64::MAX),
            (0, u64::MAX),
        ] {
            carve_all(&ram, &[hole], 2 * MIB);
        }
        assert!(carve_all(&ram, &[(0, u64::MAX)], 2 * MIB).is_empty());
    }

    #[test]
    fn for_machine_takes_out_the_tree_the_image_the_bundle_and_the_reservations() {
        let mut plat = Platform::default();
        plat.ram.push(RamRange {
            start: 0x4000_0000,
            size: 256 * MIB,
        });
        plat.bundle = Some((0x4800_0000, 0x4800_0000 + 5 * MIB));
        for r in [(0x4c00_0000, 16 * MIB), (0x4f00_0000, 0x1000)] {
            plat.reserved.push(r);
        }
        let own = Own {
            image: (0x4020_0000, 3 * MIB),
            tree: (0x4000_0000, 0x2_0000),
        };
        let f = FreeRam::for_machine(&plat, own);
        let taken = [
            own.image,
            own.tree,
            (0x4800_0000, 5 * MIB),
            (0x4c00_0000, 16 * MIB),
            (0x4f00_0000, 0x1000),
        ];
        for &(s, e) in f.ranges() {
            for t in taken {
                assert!(
                    !overlaps((s, e - s), t),
                    "free {s:#x}..{e:#x} overlaps {t:x?}"
                );
            }
        }
        let free: u64 = f.ranges().iter().map(|(s, e)| e - s).sum();
        let held: u64 = taken.iter().map(|t| t.1).sum();
        assert_eq!(free, 256 * MIB - held);
    }
}
