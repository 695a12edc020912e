//! Typed addresses and identifiers, so that a guest-physical address is never taken for a
//! host-physical one.

use core::fmt;

macro_rules! address_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        #[repr(transparent)]
        pub struct $name(pub u64);

        impl $name {
            /// The raw address.
            pub const fn raw(self) -> u64 {
                self.0
            }

            /// This address plus `offset`, or `None` on overflow.
            pub const fn checked_add(self, offset: u64) -> Option<Self> {
                match self.0.checked_add(offset) {
                    Some(v) => Some(Self(v)),
                    None => None,
                }
            }

            /// This address rounded down to a multiple of `align` (a power of two).
            pub const fn align_down(self, align: u64) -> Self {
                Self(self.0 & !(align - 1))
            }

            /// This address rounded up to a multiple of `align` (a power of two), or `None` on
            /// overflow.
            pub const fn align_up(self, align: u64) -> Option<Self> {
                match self.0.checked_add(align - 1) {
                    Some(v) => Some(Self(v & !(align - 1))),
                    None => None,
                }
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:#x})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:#x}", self.0)
            }
        }
    };
}

address_type!(
    /// An intermediate physical address: what a guest believes is physical.
    GuestPhysAddr
);
address_type!(
    /// A physical address of the machine.
    HostPhysAddr
);

/// A virtual machine's identifier (also its stage-2 VMID).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct VmId(pub u16);

/// A virtual CPU's index within its VM (0-based; also Aff0 of its virtual MPIDR).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct VcpuId(pub u16);

impl VcpuId {
    /// The index as a `usize`, for indexing per-vCPU arrays.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

/// A GIC interrupt identifier: SGI 0-15, PPI 16-31, SPI 32-1019.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct IntId(pub u32);

impl IntId {
    /// First private peripheral interrupt.
    pub const PPI_BASE: u32 = 16;
    /// First shared peripheral interrupt.
    pub const SPI_BASE: u32 = 32;

    /// The INTID of SPI number `n` (as device trees number them).
    pub const fn spi(n: u32) -> Self {
        Self(Self::SPI_BASE + n)
    }

    /// The INTID of PPI number `n` (as device trees number them).
    pub const fn ppi(n: u32) -> Self {
        Self(Self::PPI_BASE + n)
    }

    /// Whether this is a software-generated interrupt.
    pub const fn is_sgi(self) -> bool {
        self.0 < Self::PPI_BASE
    }

    /// Whether this is private to one CPU (an SGI or a PPI).
    pub const fn is_private(self) -> bool {
        self.0 < Self::SPI_BASE
    }
}

/// Number of vCPUs per Aff1 cluster, as QEMU virt numbers CPUs for a GICv3 (whose SGI target
/// lists reach 16 CPUs of one cluster).
pub const VCPUS_PER_CLUSTER: u16 = 16;

impl VcpuId {
    /// The affinity value (Aff3.Aff2.Aff1.Aff0, as in MPIDR_EL1 bits [39:32] and [23:0]) of
    /// this vCPU: Aff0 = index % 16, Aff1 = index / 16.
    pub const fn mpidr_affinity(self) -> u64 {
        ((self.0 / VCPUS_PER_CLUSTER) as u64) << 8 | (self.0 % VCPUS_PER_CLUSTER) as u64
    }

    /// The vCPU whose affinity is `aff` (MPIDR affinity fields, other bits ignored), if the
    /// affinity is one [`Self::mpidr_affinity`] can give and the index is below `count`.
    pub fn from_mpidr_affinity(aff: u64, count: usize) -> Option<Self> {
        const AFF0: u64 = 0xff;
        const AFF1_SHIFT: u64 = 8;
        const AFF2_AFF3: u64 = 0xff_0000 | 0xff << 32;
        let aff0 = aff & AFF0;
        let aff1 = (aff >> AFF1_SHIFT) & AFF0;
        if aff & AFF2_AFF3 != 0 || aff0 >= VCPUS_PER_CLUSTER as u64 {
            return None;
        }
        let index = aff1 * VCPUS_PER_CLUSTER as u64 + aff0;
        (index < count as u64).then_some(Self(index as u16))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpidr_round_trips() {
        for i in 0..40u16 {
            let aff = VcpuId(i).mpidr_affinity();
            assert_eq!(VcpuId::from_mpidr_affinity(aff, 40), Some(VcpuId(i)));
        }
        assert_eq!(VcpuId(17).mpidr_affinity(), 0x101);
        assert_eq!(
            VcpuId::from_mpidr_affinity(0x10, 40),
            None,
            "aff0 16 is not a vCPU"
        );
        assert_eq!(
            VcpuId::from_mpidr_affinity(0x1_0000, 40),
            None,
            "aff2 unused"
        );
        assert_eq!(VcpuId::from_mpidr_affinity(3, 3), None, "beyond count");
    }
}
