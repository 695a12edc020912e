//! The interface between the EL2 core and the VMM partition (version [`VERSION`]).
//!
//! The VMM runs at EL1 in a partition of its own: its own stage-2 view holding its own RAM and
//! the RAM of the guests it serves, nothing of the core. It is driven by synchronous upcalls,
//! one VMM vCPU per physical CPU, like a bhyve vCPU thread returning to user space:
//!
//! 1. A guest exit the core does not handle itself (an access to a device the VMM models)
//!    becomes a [`Request`]. The core switches the physical CPU to the VMM vCPU and returns
//!    the request from the VMM's pending [`call::WAIT`].
//! 2. The VMM handles it. While it works it may make the other calls: [`call::SET_IRQ`],
//!    [`call::CONSOLE_WRITE`], [`call::MAP_GUEST`].
//! 3. The VMM answers with the next [`call::WAIT`], whose arguments are the [`Response`]. The
//!    core completes the guest's exit and switches back. The VMM vCPU stays blocked in that
//!    WAIT until the next request.
//!
//! Every call is an `hvc #0` with the function ID in w0 (the SMCCC vendor-specific hypervisor
//! service range) and arguments in x1-x7. The result comes back in x0 as a [`Status`]
//! (negative = error), with any values in x1-x7. The core checks every argument: a VMM can
//! reach only its own memory and the RAM of the VMs it serves. Any other exception the VMM
//! takes, or a [`call::PANIC`], ends the partition. The guests it served then see their
//! devices fail (an abort on access) instead of hanging.

use crate::types::{GuestPhysAddr, IntId, VcpuId, VmId};
use core::fmt;

/// The ABI version [`call::VERSION`] returns. Bump it on any incompatible change.
pub const VERSION: u64 = 4;

/// Function IDs (SMCCC: fast call, SMC64, owner 6 = vendor-specific hypervisor service).
pub mod call {
    /// Returns [`super::VERSION`] in x1.
    pub const VERSION: u32 = 0xC600_0000;
    /// Completes the current request with the [`super::Response`] in x1-x6, then blocks until
    /// the next [`super::Request`], returned in x0-x7. The first WAIT of a VMM vCPU completes
    /// nothing.
    pub const WAIT: u32 = 0xC600_0001;
    /// Sets guest interrupt line x2 (an SPI's INTID) of VM x1 to level x3 (0 or 1).
    pub const SET_IRQ: u32 = 0xC600_0002;
    /// Maps the RAM of VM x1 into the VMM's view at x2, which must be
    /// [`super::guest_window`]`(x1)`.
    pub const MAP_GUEST: u32 = 0xC600_0003;
    /// Writes x2 bytes (at most [`super::CONSOLE_CHUNK`]), packed little-endian in x3-x6, to the
    /// machine console on behalf of VM x1.
    pub const CONSOLE_WRITE: u32 = 0xC600_0004;
    /// Unmaps VM x1's RAM from the VMM's view.
    pub const UNMAP_GUEST: u32 = 0xC600_0005;
    /// Pauses (x3 = 0) or resumes (x3 = 1) vCPU x2 of VM x1.
    pub const VCPU_CTL: u32 = 0xC600_0006;
    /// Returns in x1 the host-physical address of the VMM's RAM base ([`super::VMM_RAM_BASE`]):
    /// the devices of the machine the VMM drives ([`HOST_DEVICE`]) take host-physical DMA
    /// addresses. Without an SMMU such a device reaches all memory, so the VMM that drives it
    /// is trusted with all memory too (a driver domain).
    pub const HOST_INFO: u32 = 0xC600_0007;
    /// Describes device x1 (0, 1, ...) of the machine the core gave the VMM: x1 = its virtio
    /// device ID, x2 = its register frame's address in the VMM's view (in the page
    /// [`super::host_device_page`]`(x1)`), x3 = the frame's size, x4 = 1 if its interrupt
    /// comes to the VMM as [`super::Request::HostIrq`]. InvalidArgument past the last one.
    pub const HOST_DEVICE: u32 = 0xC600_0008;
    /// The machine's time of day ([`super::WallClock`]): x1 = seconds since the Unix epoch at
    /// boot, x2 = the physical counter (CNTPCT) then, x3 = its frequency (CNTFRQ), x4 = the
    /// counter now. The VMM works out the time from them ([`super::WallClock::seconds_at`]):
    /// it cannot read CNTPCT itself (EL1's access depends on CNTHCTL_EL2, which an upcall does
    /// not set), and its CNTVCT carries the offset of whichever guest ran last.
    pub const CLOCK: u32 = 0xC600_0009;
    /// The VMM cannot go on: x1 bytes of message packed in x2-x7. Does not return.
    pub const PANIC: u32 = 0xC600_00FF;
}

/// What a call returns in x0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    /// Done.
    Ok = 0,
    /// Unknown function.
    NotSupported = -1,
    /// No such VM, or not one this VMM serves.
    InvalidVm = -2,
    /// No such vCPU.
    InvalidVcpu = -3,
    /// An address outside what the caller may reach.
    InvalidAddress = -4,
    /// Some other argument out of range.
    InvalidArgument = -5,
    /// The device failed (a response): the guest gets an abort.
    DeviceError = -6,
}

impl Status {
    /// As x0 carries it (sign-extended).
    pub const fn to_reg(self) -> u64 {
        self as i32 as i64 as u64
    }

    /// From x0.
    pub const fn from_reg(x0: u64) -> Option<Self> {
        Some(match x0 as i64 {
            0 => Self::Ok,
            -1 => Self::NotSupported,
            -2 => Self::InvalidVm,
            -3 => Self::InvalidVcpu,
            -4 => Self::InvalidAddress,
            -5 => Self::InvalidArgument,
            -6 => Self::DeviceError,
            _ => return None,
        })
    }
}

/// Largest console write in one call (x3-x6).
pub const CONSOLE_CHUNK: usize = 32;
/// Largest panic message in one call (x2-x7).
pub const PANIC_CHUNK: usize = 48;

/// Base of the VMM's own RAM in its view.
pub const VMM_RAM_BASE: GuestPhysAddr = GuestPhysAddr(0x4000_0000);
/// Size of the VMM's own RAM.
pub const VMM_RAM_SIZE: u64 = 16 << 20;
/// Where guest RAM windows start in the VMM's view (64 GiB: below 512 GiB, so the VMM maps
/// its whole view with one level-1 table of 1 GiB blocks).
pub const GUEST_WINDOW_BASE: u64 = 0x10_0000_0000;
/// Each VM's window (the most guest RAM a VM may have).
pub const GUEST_WINDOW_SIZE: u64 = 0x4_0000_0000;
/// Number of windows (VMs one VMM can serve).
pub const MAX_VMS: usize = 8;

/// Where the devices of the machine the VMM drives appear in its view: one 4 KiB page each
/// (device memory), below its RAM.
pub const HOST_DEVICE_BASE: u64 = 0x2000_0000;
/// Room for each host device's page.
pub const HOST_DEVICE_STRIDE: u64 = 0x1000;
/// Most devices of the machine a VMM drives.
pub const MAX_HOST_DEVICES: usize = 8;

/// The page of host device `index` in the VMM's view, if there can be one.
pub const fn host_device_page(index: usize) -> Option<GuestPhysAddr> {
    if index < MAX_HOST_DEVICES {
        Some(GuestPhysAddr(
            HOST_DEVICE_BASE + index as u64 * HOST_DEVICE_STRIDE,
        ))
    } else {
        None
    }
}

/// Where VM `vm`'s RAM appears in the VMM's view, if it can.
pub const fn guest_window(vm: VmId) -> Option<GuestPhysAddr> {
    if (vm.0 as usize) < MAX_VMS {
        Some(GuestPhysAddr(
            GUEST_WINDOW_BASE + vm.0 as u64 * GUEST_WINDOW_SIZE,
        ))
    } else {
        None
    }
}

/// The machine's time of day, as the core read it at boot: its RTC's seconds paired with the
/// physical counter, so that the time at any later count is `seconds + elapsed / frequency`.
/// A machine without an RTC starts at 0 (1970).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct WallClock {
    /// Seconds since the Unix epoch at `count`.
    pub seconds: u64,
    /// CNTPCT when `seconds` was read.
    pub count: u64,
    /// CNTFRQ: counter ticks per second.
    pub frequency: u64,
}

impl WallClock {
    /// Seconds since the Unix epoch at counter value `now`. A count before the pairing (or a
    /// counter without a frequency) gives the boot time itself: the clock never goes back.
    pub const fn seconds_at(self, now: u64) -> u64 {
        if self.frequency == 0 {
            return self.seconds;
        }
        self.seconds
            .saturating_add(now.saturating_sub(self.count) / self.frequency)
    }

    /// x1-x3 of [`call::CLOCK`]'s answer (x4, the counter now, is added by the core).
    pub const fn to_regs(self) -> [u64; 3] {
        [self.seconds, self.count, self.frequency]
    }

    /// From x1-x3.
    pub const fn from_regs(r: [u64; 3]) -> Self {
        Self {
            seconds: r[0],
            count: r[1],
            frequency: r[2],
        }
    }
}

/// A request from the core, as [`call::WAIT`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// A guest vCPU's load or store to a device the VMM models, at `ipa` (guest-physical).
    Mmio {
        /// The VM.
        vm: VmId,
        /// The vCPU that made the access.
        vcpu: VcpuId,
        /// The address.
        ipa: GuestPhysAddr,
        /// Width in bytes: 1, 2, 4 or 8.
        size: u8,
        /// A store.
        write: bool,
        /// The value stored (zero for a load).
        data: u64,
    },
    /// Bytes typed on the machine console for VM `vm` (at most 8, in `bytes`, first byte
    /// lowest).
    ConsoleInput {
        /// The VM.
        vm: VmId,
        /// How many of `bytes` are valid (1..=8).
        len: u8,
        /// The bytes.
        bytes: u64,
    },
    /// Bytes the guest wrote to its UART's data register, posted: the core queued them
    /// without an upcall each (see [`UartShadow`]) and hands them over in order, before any
    /// other request for that VM.
    UartTx {
        /// The VM.
        vm: VmId,
        /// How many of `bytes` are valid (1..=[`UART_TX_CHUNK`]).
        len: u8,
        /// The bytes, packed by [`pack`].
        bytes: [u64; 4],
    },
    /// VM `vm` was created or reset: (re)create its devices. Its RAM is `ram_size` bytes at
    /// `ram_base` (guest-physical).
    VmStart {
        /// The VM.
        vm: VmId,
        /// Guest-physical base of its RAM.
        ram_base: GuestPhysAddr,
        /// Its RAM size.
        ram_size: u64,
        /// A fault to inject, for tests (see [`FaultPlan`]).
        fault: FaultPlan,
        /// The devices the VM has.
        devices: DeviceSet,
        /// The part of the machine's disk its virtio-blk is.
        disk: DiskSlice,
        /// Its virtio-net's address, when its description gives one; otherwise the VMM's
        /// stable default for the VM id. Carried in x1 above the VM id.
        mac: Option<Mac>,
    },
    /// VM `vm`, just (re)started with [`DeviceSet::FLASH`], keeps its variable flash on
    /// `slice` of the machine's disk: the VMM fills the bank from it and writes every
    /// program and erase through to it. Sent right after the VM's `VmStart`.
    VarsStore {
        /// The VM.
        vm: VmId,
        /// Where the store lies (never read-only, never "to the end": `sectors` > 0).
        slice: DiskSlice,
    },
    /// A device of the machine the VMM drives ([`call::HOST_DEVICE`] `index`) raised its
    /// interrupt. The core sends it outside any other request, in the name of `vm` (a VM the
    /// VMM serves, so the VMM can raise that VM's lines); the interrupt stays masked until
    /// the VMM answers, by which time it has acknowledged the device.
    HostIrq {
        /// The VM in whose name the request comes.
        vm: VmId,
        /// The host device.
        index: u8,
    },
}

/// Sectors `start .. start + sectors` of the machine's disk, as one VM's disk: several VMs'
/// disks may be slices of one disk. `sectors` = 0 means "to the end of the disk".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DiskSlice {
    /// First sector (512 bytes).
    pub start: u64,
    /// Number of sectors, or 0 for all from `start` on.
    pub sectors: u64,
    /// Writes are refused (also when the machine's disk is read-only).
    pub read_only: bool,
}

impl DiskSlice {
    /// The whole disk, writable if the disk is.
    pub const WHOLE: Self = Self {
        start: 0,
        sectors: 0,
        read_only: false,
    };

    /// Bit of the sector-count register that carries `read_only`.
    const RO_BIT: u64 = 1 << 63;

    /// As two registers.
    pub const fn to_regs(self) -> [u64; 2] {
        [
            self.start,
            (self.sectors & !Self::RO_BIT) | if self.read_only { Self::RO_BIT } else { 0 },
        ]
    }

    /// From two registers.
    pub const fn from_regs(r: [u64; 2]) -> Self {
        Self {
            start: r[0],
            sectors: r[1] & !Self::RO_BIT,
            read_only: r[1] & Self::RO_BIT != 0,
        }
    }
}

/// A unicast Ethernet address given to a VM's network card.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac([u8; 6]);

impl Mac {
    /// Bit of the first octet that marks a group (multicast or broadcast) address.
    const GROUP_BIT: u8 = 0x01;
    /// Where the 48 address bits sit in x1 of a [`Request::VmStart`], above the VM id.
    const SHIFT: u64 = 16;

    /// The first three octets of every default address ([`Self::default_for`]): locally
    /// administered, unicast, then "rh" for rhyve. A VM description may not name an address
    /// in this range, so a configured address never collides with a default one.
    pub const DEFAULT_PREFIX: [u8; 3] = [0x02, 0x72, 0x68];

    /// `octets` as a card's address: `None` for a group address or all zeroes, which no card
    /// may have (and zero is what x1 carries for "no address given").
    pub const fn unicast(octets: [u8; 6]) -> Option<Self> {
        if octets[0] & Self::GROUP_BIT != 0 || Self::bits(octets) == 0 {
            None
        } else {
            Some(Self(octets))
        }
    }

    /// The stable default address of network card `nic` of VM `vm`:
    /// `02:72:68:vm:vm:nic` ([`Self::DEFAULT_PREFIX`]), so the same VM gets the same address
    /// on every boot.
    pub const fn default_for(vm: u16, nic: u8) -> Self {
        let [p0, p1, p2] = Self::DEFAULT_PREFIX;
        let [hi, lo] = vm.to_be_bytes();
        // The prefix makes it unicast and not zero.
        Self([p0, p1, p2, hi, lo, nic])
    }

    /// Whether this address is in rhyve's default range ([`Self::DEFAULT_PREFIX`]).
    pub const fn is_rhyve_default(self) -> bool {
        let [p0, p1, p2] = Self::DEFAULT_PREFIX;
        self.0[0] == p0 && self.0[1] == p1 && self.0[2] == p2
    }

    /// The six octets, first on the wire first.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// The 48-bit number of `o`, first octet most significant.
    const fn bits(o: [u8; 6]) -> u64 {
        u64::from_be_bytes([0, 0, o[0], o[1], o[2], o[3], o[4], o[5]])
    }

    /// The bits x1 carries for `mac`, above the VM id; 0 for none.
    const fn to_reg_bits(mac: Option<Self>) -> u64 {
        match mac {
            None => 0,
            Some(Self(o)) => Self::bits(o) << Self::SHIFT,
        }
    }

    /// The address in x1: `Ok(None)` when none is given, `Err` for one no card may have.
    const fn from_reg(x1: u64) -> Result<Option<Self>, ()> {
        let b = (x1 >> Self::SHIFT).to_be_bytes();
        if x1 >> Self::SHIFT == 0 {
            return Ok(None);
        }
        match Self::unicast([b[2], b[3], b[4], b[5], b[6], b[7]]) {
            Some(m) => Ok(Some(m)),
            None => Err(()),
        }
    }
}

impl fmt::Display for Mac {
    /// `52:54:00:12:34:56`, as a VM description writes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The devices of one VM: which of the machine's device models it gets. The loader describes
/// exactly these in the guest's device tree and the VMM creates exactly these, each virtio
/// device at the slot [`VirtioKind::slot`] gives it, so the two always agree. A VM
/// description's `devices` list names them ([`Self::EACH`]).
///
/// Bit 0 is the PL011, bit 1 the PL031; the virtio kind at slot `s` is bit
/// [`Self::VIRTIO_FIRST_BIT`]` + s` ([`VirtioKind::device`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeviceSet(pub u32);

impl DeviceSet {
    /// No devices: a VM the VMM partition does not serve at all.
    pub const NONE: Self = Self(0);
    /// The PL011 UART (the console `console=ttyAMA0` names).
    pub const PL011: Self = Self(1 << 0);
    /// The PL031 real-time clock.
    pub const PL031: Self = Self(1 << 1);
    /// QEMU virt's two CFI flash banks ([`crate::layout::FLASH_BASE`]): what a VM that boots
    /// firmware runs from and keeps its variables in. Not named in a description's `devices`
    /// (its `firmware` brings it), so outside [`Self::EACH`] and [`Self::ALL`].
    pub const FLASH: Self = Self(1 << 31);
    /// The devices at fixed places of their own, before the virtio kinds, with their names.
    const PLATFORM: [(Self, &'static str); 2] = [(Self::PL011, "pl011"), (Self::PL031, "pl031")];
    /// The bit of the virtio kind at slot 0: the first above the platform devices'.
    pub const VIRTIO_FIRST_BIT: u32 = Self::PLATFORM.len() as u32;
    /// virtio-console: hvc0 and a second port.
    pub const VIRTIO_CONSOLE: Self = VirtioKind::Console.device();
    /// virtio-blk.
    pub const VIRTIO_BLK: Self = VirtioKind::Blk.device();
    /// virtio-net.
    pub const VIRTIO_NET: Self = VirtioKind::Net.device();
    /// virtio-rng.
    pub const VIRTIO_RNG: Self = VirtioKind::Rng.device();
    /// How many devices there are: the platform devices and the virtio kinds.
    pub const COUNT: usize = Self::PLATFORM.len() + VirtioKind::ALL.len();
    /// Each device alone, with its name in a VM description's `devices` list, in the order a
    /// description lists them: the PL011, the PL031, then the virtio kinds in slot order.
    pub const EACH: [(Self, &'static str); Self::COUNT] = {
        let mut each = [(Self::PL011, "pl011"); Self::COUNT];
        let mut i = 0;
        while i < Self::PLATFORM.len() {
            each[i] = Self::PLATFORM[i];
            i += 1;
        }
        let mut k = 0;
        while k < VirtioKind::ALL.len() {
            let kind = VirtioKind::ALL[k];
            each[Self::PLATFORM.len() + k] = (kind.device(), kind.name());
            k += 1;
        }
        each
    };
    /// Every device.
    pub const ALL: Self = {
        let mut all = Self::NONE;
        let mut i = 0;
        while i < Self::COUNT {
            all = all.with(Self::EACH[i].0);
            i += 1;
        }
        all
    };

    /// Both sets' devices.
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// This set without `other`'s devices.
    pub const fn without(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// Whether every device of `other` is in this set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Only the bits that name a device.
    pub const fn known(self) -> Self {
        Self(self.0 & (Self::ALL.0 | Self::FLASH.0))
    }

    /// The device a VM description's `devices` list calls `name`.
    pub fn named(name: &str) -> Option<Self> {
        Self::EACH
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(device, _)| *device)
    }

    /// The names of the set's devices, in [`Self::EACH`] order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::EACH
            .into_iter()
            .filter(move |(device, _)| self.contains(*device))
            .map(|(_, name)| name)
    }

    /// Whether the set has the virtio device `kind`.
    pub const fn has_virtio(self, kind: VirtioKind) -> bool {
        self.contains(kind.device())
    }

    /// The virtio-mmio slots of the set's virtio devices, in slot order: `(slots, count)`;
    /// entries from `count` on are unused.
    pub const fn slots(self) -> ([u32; VirtioKind::ALL.len()], usize) {
        let mut out = [0u32; VirtioKind::ALL.len()];
        let mut n = 0;
        let mut i = 0;
        while i < VirtioKind::ALL.len() {
            let kind = VirtioKind::ALL[i];
            if self.has_virtio(kind) {
                out[n] = kind.slot();
                n += 1;
            }
            i += 1;
        }
        (out, n)
    }
}

/// The kinds of virtio device a VM can have. A new kind is a variant here, in [`Self::ALL`],
/// with its slot and name; [`DeviceSet`] and the VM description's `devices` follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VirtioKind {
    /// virtio-console.
    Console,
    /// virtio-blk.
    Blk,
    /// virtio-net.
    Net,
    /// virtio-rng.
    Rng,
}

impl VirtioKind {
    /// Every kind, in slot order.
    pub const ALL: [Self; 4] = [Self::Console, Self::Blk, Self::Net, Self::Rng];

    /// The virtio-mmio slot this kind always sits at (`abi::layout::VIRTIO_MMIO_BASE +
    /// VIRTIO_MMIO_STRIDE * slot`, SPI `VIRTIO_MMIO_SPI_BASE + slot`), whatever else the VM
    /// has: a guest's disk stays at the same address when its network card is taken away.
    pub const fn slot(self) -> u32 {
        match self {
            Self::Console => 0,
            Self::Blk => 1,
            Self::Net => 2,
            Self::Rng => 3,
        }
    }

    /// Its name in a VM description's `devices` list.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Console => "virtio-console",
            Self::Blk => "virtio-blk",
            Self::Net => "virtio-net",
            Self::Rng => "virtio-rng",
        }
    }

    /// The kind at virtio-mmio slot `slot`, if any.
    pub const fn at_slot(slot: u32) -> Option<Self> {
        let mut i = 0;
        while i < Self::ALL.len() {
            if Self::ALL[i].slot() == slot {
                return Some(Self::ALL[i]);
            }
            i += 1;
        }
        None
    }

    /// The [`DeviceSet`] bit of this kind: bit [`DeviceSet::VIRTIO_FIRST_BIT`]` + slot`,
    /// above the platform devices'.
    pub const fn device(self) -> DeviceSet {
        DeviceSet(1 << (DeviceSet::VIRTIO_FIRST_BIT + self.slot()))
    }

    /// The guest interrupt of this kind's slot.
    pub const fn intid(self) -> IntId {
        IntId::spi(crate::layout::VIRTIO_MMIO_SPI_BASE + self.slot())
    }
}

/// Test hook: make one device model fail on purpose, to check that the core contains the
/// failure. `0` means none.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FaultPlan(pub u64);

impl FaultPlan {
    /// The PL011 model panics on its `n`th write (n >= 1).
    pub const fn pl011_write(n: u32) -> Self {
        Self(n as u64)
    }

    /// The write on which the PL011 model panics, if any.
    pub const fn pl011_panic_on_write(self) -> Option<u32> {
        if self.0 == 0 || self.0 > u32::MAX as u64 {
            None
        } else {
            Some(self.0 as u32)
        }
    }
}

const KIND_MMIO: u64 = 1;
const KIND_CONSOLE_INPUT: u64 = 2;
const KIND_VM_START: u64 = 3;
const KIND_UART_TX: u64 = 4;
const KIND_HOST_IRQ: u64 = 5;
const KIND_VARS_STORE: u64 = 6;

/// Most posted UART bytes in one [`Request::UartTx`].
pub const UART_TX_CHUNK: usize = 32;
const WRITE_FLAG: u64 = 1 << 8;
const SIZE_MASK: u64 = 0xff;
const VCPU_SHIFT: u64 = 16;
const ID_MASK: u64 = 0xffff;

impl Request {
    /// The registers x0-x7 that carry this request.
    pub const fn to_regs(self) -> [u64; 8] {
        match self {
            Self::Mmio {
                vm,
                vcpu,
                ipa,
                size,
                write,
                data,
            } => [
                KIND_MMIO,
                vm.0 as u64 | (vcpu.0 as u64) << VCPU_SHIFT,
                ipa.0,
                size as u64 | if write { WRITE_FLAG } else { 0 },
                data,
                0,
                0,
                0,
            ],
            Self::ConsoleInput { vm, len, bytes } => [
                KIND_CONSOLE_INPUT,
                vm.0 as u64,
                len as u64,
                bytes,
                0,
                0,
                0,
                0,
            ],
            Self::UartTx { vm, len, bytes } => [
                KIND_UART_TX,
                vm.0 as u64,
                len as u64,
                bytes[0],
                bytes[1],
                bytes[2],
                bytes[3],
                0,
            ],
            Self::VmStart {
                vm,
                ram_base,
                ram_size,
                fault,
                devices,
                disk,
                mac,
            } => {
                let d = disk.to_regs();
                [
                    KIND_VM_START,
                    vm.0 as u64 | Mac::to_reg_bits(mac),
                    ram_base.0,
                    ram_size,
                    fault.0,
                    devices.0 as u64,
                    d[0],
                    d[1],
                ]
            }
            Self::HostIrq { vm, index } => {
                [KIND_HOST_IRQ, vm.0 as u64, index as u64, 0, 0, 0, 0, 0]
            }
            Self::VarsStore { vm, slice } => {
                let s = slice.to_regs();
                [KIND_VARS_STORE, vm.0 as u64, s[0], s[1], 0, 0, 0, 0]
            }
        }
    }

    /// The request in x0-x7, if they hold a well-formed one.
    pub const fn from_regs(r: [u64; 8]) -> Option<Self> {
        match r[0] {
            KIND_MMIO => {
                let size = (r[3] & SIZE_MASK) as u8;
                if !matches!(size, 1 | 2 | 4 | 8) {
                    return None;
                }
                Some(Self::Mmio {
                    vm: VmId((r[1] & ID_MASK) as u16),
                    vcpu: VcpuId(((r[1] >> VCPU_SHIFT) & ID_MASK) as u16),
                    ipa: GuestPhysAddr(r[2]),
                    size,
                    write: r[3] & WRITE_FLAG != 0,
                    data: r[4],
                })
            }
            KIND_CONSOLE_INPUT => {
                if r[2] == 0 || r[2] > 8 {
                    return None;
                }
                Some(Self::ConsoleInput {
                    vm: VmId((r[1] & ID_MASK) as u16),
                    len: r[2] as u8,
                    bytes: r[3],
                })
            }
            KIND_UART_TX => {
                if r[2] == 0 || r[2] > UART_TX_CHUNK as u64 {
                    return None;
                }
                Some(Self::UartTx {
                    vm: VmId((r[1] & ID_MASK) as u16),
                    len: r[2] as u8,
                    bytes: [r[3], r[4], r[5], r[6]],
                })
            }
            KIND_VM_START => {
                let Ok(mac) = Mac::from_reg(r[1]) else {
                    return None;
                };
                Some(Self::VmStart {
                    vm: VmId((r[1] & ID_MASK) as u16),
                    ram_base: GuestPhysAddr(r[2]),
                    ram_size: r[3],
                    fault: FaultPlan(r[4]),
                    devices: DeviceSet(r[5] as u32).known(),
                    disk: DiskSlice::from_regs([r[6], r[7]]),
                    mac,
                })
            }
            KIND_VARS_STORE => {
                let slice = DiskSlice::from_regs([r[2], r[3]]);
                if slice.sectors == 0 || slice.read_only {
                    return None;
                }
                Some(Self::VarsStore {
                    vm: VmId((r[1] & ID_MASK) as u16),
                    slice,
                })
            }
            KIND_HOST_IRQ => {
                if r[2] >= MAX_HOST_DEVICES as u64 {
                    return None;
                }
                Some(Self::HostIrq {
                    vm: VmId((r[1] & ID_MASK) as u16),
                    index: r[2] as u8,
                })
            }
            _ => None,
        }
    }
}

/// Largest console output carried by a [`Response`] (x4-x5).
pub const RESPONSE_CONSOLE_CHUNK: usize = 16;

/// The VMM's answer to a request, as the arguments of its next [`call::WAIT`] (x1-x6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Response {
    /// [`Status::Ok`], or [`Status::DeviceError`] to make the guest's access abort.
    pub status: Status,
    /// For a load: the value. For console input: how many bytes were taken.
    pub value: u64,
    /// Console output of the request's VM that the core prints (so a UART write costs no
    /// extra call): how many bytes of `console` are valid (at most [`RESPONSE_CONSOLE_CHUNK`]).
    pub console_len: u8,
    /// The output bytes, packed by [`pack`].
    pub console: [u64; 2],
    /// The state of the request's VM's UART after this request, for the core's fast path.
    pub uart: UartShadow,
    /// After an access to a flash bank: which banks read as their array, so the core maps them
    /// for direct reads (and which it must unmap, so that reads reach the model). Carried
    /// in x3 above the console length.
    pub flash: FlashView,
}

/// Which flash banks read as their array (CFI read-array mode) after a request, as the VMM
/// says. A bank in read-array mode is mapped read-only into the guest, so reads (and the
/// firmware's instruction fetches) cost no exit and only writes reach the model; in any other
/// mode (status, identifier, CFI query) reads must reach the model, so the core unmaps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct FlashView {
    /// The view is given: the request touched the flash (otherwise the core leaves the
    /// mappings as they are).
    pub valid: bool,
    /// Bank i reads as its array.
    pub array: [bool; 2],
}

impl FlashView {
    /// No view: the mappings stay as they are.
    pub const NONE: Self = Self {
        valid: false,
        array: [false; 2],
    };
    const SHIFT: u32 = 8;
    const VALID: u64 = 1 << Self::SHIFT;
    const ARRAY0: u64 = 1 << (Self::SHIFT + 1);
    const ARRAY1: u64 = 1 << (Self::SHIFT + 2);

    /// As bits 8-10 of a register.
    pub const fn to_bits(self) -> u64 {
        if !self.valid {
            return 0;
        }
        Self::VALID
            | if self.array[0] { Self::ARRAY0 } else { 0 }
            | if self.array[1] { Self::ARRAY1 } else { 0 }
    }

    /// From bits 8-10 of a register.
    pub const fn from_bits(r: u64) -> Self {
        if r & Self::VALID == 0 {
            return Self::NONE;
        }
        Self {
            valid: true,
            array: [r & Self::ARRAY0 != 0, r & Self::ARRAY1 != 0],
        }
    }
}

/// What the core may do for a VM's UART without an upcall, as the VMM last said (x6 of
/// WAIT). Under QEMU an upcall costs a full TLB flush (switching TCR/SCTLR/VTTBR flushes
/// QEMU's software TLB), and Linux writes its console one byte at a time with a flag
/// register read before each: without this, every byte would cost two upcalls.
///
/// - Reads of UARTFR are answered with `fr`: the flags change only inside upcalls (input,
///   data register reads), each of which returns a fresh shadow.
/// - Writes to UARTDR are posted (queued, handed over by [`Request::UartTx`]) while `post_tx`:
///   the transmitter drains at once, so a write changes nothing the guest can see (the VMM
///   clears it in loopback mode, where a write feeds the receiver).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UartShadow {
    /// The shadow is valid.
    pub valid: bool,
    /// Data register writes may be posted.
    pub post_tx: bool,
    /// UARTFR.
    pub fr: u16,
}

const SHADOW_VALID: u64 = 1 << 63;
const SHADOW_POST_TX: u64 = 1 << 62;
const SHADOW_FR: u64 = 0xffff;

impl UartShadow {
    /// No shadow: every access goes to the VMM.
    pub const NONE: Self = Self {
        valid: false,
        post_tx: false,
        fr: 0,
    };

    /// As x6 carries it.
    pub const fn to_reg(self) -> u64 {
        (if self.valid { SHADOW_VALID } else { 0 })
            | (if self.post_tx { SHADOW_POST_TX } else { 0 })
            | self.fr as u64
    }

    /// From x6.
    pub const fn from_reg(x: u64) -> Self {
        Self {
            valid: x & SHADOW_VALID != 0,
            post_tx: x & SHADOW_POST_TX != 0,
            fr: (x & SHADOW_FR) as u16,
        }
    }
}

impl Response {
    /// A completed access (`value` for a load, ignored for a store).
    pub const fn ok(value: u64) -> Self {
        Self {
            status: Status::Ok,
            value,
            console_len: 0,
            console: [0; 2],
            uart: UartShadow::NONE,
            flash: FlashView::NONE,
        }
    }

    /// A failed access.
    pub const fn error() -> Self {
        Self {
            status: Status::DeviceError,
            value: 0,
            console_len: 0,
            console: [0; 2],
            uart: UartShadow::NONE,
            flash: FlashView::NONE,
        }
    }

    /// The registers x1-x5 of the WAIT that carries this response.
    pub const fn to_regs(self) -> [u64; 6] {
        [
            self.status.to_reg(),
            self.value,
            self.console_len as u64 | self.flash.to_bits(),
            self.console[0],
            self.console[1],
            self.uart.to_reg(),
        ]
    }

    /// The response in WAIT's x1-x6. A status other than Ok counts as a device error; a
    /// console length beyond [`RESPONSE_CONSOLE_CHUNK`] is cut to it.
    pub const fn from_regs(r: [u64; 6]) -> Self {
        let status = match Status::from_reg(r[0]) {
            Some(Status::Ok) => Status::Ok,
            _ => Status::DeviceError,
        };
        let raw_len = r[2] & 0xff;
        let len = if raw_len > RESPONSE_CONSOLE_CHUNK as u64 {
            RESPONSE_CONSOLE_CHUNK as u8
        } else {
            raw_len as u8
        };
        Self {
            status,
            value: r[1],
            console_len: len,
            flash: FlashView::from_bits(r[2]),
            console: [r[3], r[4]],
            uart: UartShadow::from_reg(r[5]),
        }
    }
}

/// Packs up to `N * 8` bytes into registers, little-endian, first byte lowest.
pub fn pack<const N: usize>(bytes: &[u8]) -> [u64; N] {
    let mut regs = [0u64; N];
    for (i, b) in bytes.iter().take(N * 8).enumerate() {
        regs[i / 8] |= (*b as u64) << ((i % 8) * 8);
    }
    regs
}

/// Unpacks `len` bytes (at most `N * 8`) from registers packed by [`pack`] into `out`; returns
/// the bytes written.
pub fn unpack<const N: usize>(regs: [u64; N], len: usize, out: &mut [u8]) -> usize {
    let n = len.min(N * 8).min(out.len());
    for (i, o) in out.iter_mut().take(n).enumerate() {
        *o = (regs[i / 8] >> ((i % 8) * 8)) as u8;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_through_registers() {
        let reqs = [
            Request::Mmio {
                vm: VmId(3),
                vcpu: VcpuId(7),
                ipa: GuestPhysAddr(0x0900_0018),
                size: 4,
                write: true,
                data: 0xdead_beef,
            },
            Request::Mmio {
                vm: VmId(0),
                vcpu: VcpuId(0),
                ipa: GuestPhysAddr(1),
                size: 1,
                write: false,
                data: 0,
            },
            Request::ConsoleInput {
                vm: VmId(1),
                len: 5,
                bytes: 0x6f_6c_6c_65_68,
            },
            Request::UartTx {
                vm: VmId(1),
                len: 32,
                bytes: pack(b"0123456789abcdef0123456789abcdef"),
            },
            Request::VmStart {
                vm: VmId(2),
                ram_base: GuestPhysAddr(0x4000_0000),
                ram_size: 512 << 20,
                fault: FaultPlan::pl011_write(9),
                devices: DeviceSet::PL011.with(DeviceSet::VIRTIO_RNG),
                disk: DiskSlice {
                    start: 2048,
                    sectors: 1 << 20,
                    read_only: true,
                },
                mac: Mac::unicast([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            },
            Request::VmStart {
                vm: VmId(u16::MAX),
                ram_base: GuestPhysAddr(0x4000_0000),
                ram_size: 16 << 20,
                fault: FaultPlan::default(),
                devices: DeviceSet::ALL,
                disk: DiskSlice::WHOLE,
                mac: Mac::unicast([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff]),
            },
            Request::HostIrq {
                vm: VmId(1),
                index: 3,
            },
            Request::VarsStore {
                vm: VmId(2),
                slice: DiskSlice {
                    start: 131072,
                    sectors: 131072,
                    read_only: false,
                },
            },
        ];
        for r in reqs {
            assert_eq!(Request::from_regs(r.to_regs()), Some(r));
        }
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert_eq!(Request::from_regs([0; 8]), None);
        assert_eq!(
            Request::from_regs([KIND_VARS_STORE, 0, 8, 0, 0, 0, 0, 0]),
            None,
            "an empty store"
        );
        assert_eq!(
            Request::from_regs([KIND_VARS_STORE, 0, 8, 1 | 1 << 63, 0, 0, 0, 0]),
            None,
            "a read-only store"
        );
        assert_eq!(Request::from_regs([99, 0, 0, 0, 0, 0, 0, 0]), None);
        assert_eq!(
            Request::from_regs([KIND_MMIO, 0, 0, 3, 0, 0, 0, 0]),
            None,
            "size 3"
        );
        assert_eq!(
            Request::from_regs([KIND_CONSOLE_INPUT, 0, 9, 0, 0, 0, 0, 0]),
            None,
            "9 bytes"
        );
        assert_eq!(
            Request::from_regs([KIND_CONSOLE_INPUT, 0, 0, 0, 0, 0, 0, 0]),
            None,
            "0 bytes"
        );
        assert_eq!(
            Request::from_regs([KIND_HOST_IRQ, 0, MAX_HOST_DEVICES as u64, 0, 0, 0, 0, 0]),
            None,
            "no such host device"
        );
    }

    #[test]
    fn status_codes_round_trip_and_sign_extend() {
        for s in [
            Status::Ok,
            Status::NotSupported,
            Status::InvalidVm,
            Status::InvalidVcpu,
            Status::InvalidAddress,
            Status::InvalidArgument,
            Status::DeviceError,
        ] {
            assert_eq!(Status::from_reg(s.to_reg()), Some(s));
        }
        assert_eq!(Status::InvalidVm.to_reg(), u64::MAX - 1);
        assert_eq!(Status::from_reg(5), None);
    }

    #[test]
    fn responses_round_trip_and_bad_fields_are_contained() {
        let mut r = Response::ok(0x1234);
        r.console_len = 3;
        r.console = pack(b"hi!");
        r.uart = UartShadow {
            valid: true,
            post_tx: true,
            fr: 0x90,
        };
        assert_eq!(Response::from_regs(r.to_regs()), r);
        for array in [[false, false], [true, false], [false, true], [true, true]] {
            r.flash = FlashView { valid: true, array };
            assert_eq!(Response::from_regs(r.to_regs()), r, "{array:?}");
        }
        r.flash = FlashView::NONE;
        assert_eq!(Response::from_regs(r.to_regs()).flash, FlashView::NONE);
        let bad = Response::from_regs([77, 5, 1000, 0, 0, 0]);
        assert_eq!(
            bad.status,
            Status::DeviceError,
            "unknown status = device error"
        );
        assert_eq!(bad.console_len as usize, RESPONSE_CONSOLE_CHUNK);
    }

    #[test]
    fn bytes_pack_and_unpack() {
        let msg = b"hello, console: 0123456789abcdef";
        let regs: [u64; 4] = pack(msg);
        let mut out = [0u8; 40];
        assert_eq!(unpack(regs, msg.len(), &mut out), 32);
        assert_eq!(&out[..32], &msg[..32]);
        assert_eq!(
            unpack(regs, 100, &mut out),
            32,
            "never more than the registers hold"
        );
    }

    #[test]
    fn device_sets_map_to_fixed_distinct_slots() {
        assert_eq!(DeviceSet::ALL.slots(), ([0, 1, 2, 3], 4));
        assert_eq!(DeviceSet::PL011.slots().1, 0, "a UART is not a virtio slot");
        assert_eq!(DeviceSet::PL031.slots().1, 0, "nor is an RTC");
        let (slots, n) = DeviceSet::VIRTIO_RNG.with(DeviceSet::VIRTIO_BLK).slots();
        assert_eq!(
            &slots[..n],
            &[VirtioKind::Blk.slot(), VirtioKind::Rng.slot()],
            "slot order, and each kind keeps its slot without the others"
        );
        for kind in VirtioKind::ALL {
            assert_eq!(VirtioKind::at_slot(kind.slot()), Some(kind));
            assert!(DeviceSet::ALL.has_virtio(kind));
            assert!(!DeviceSet::ALL.without(kind.device()).has_virtio(kind));
            assert_eq!(
                kind.intid().0,
                IntId::SPI_BASE + crate::layout::VIRTIO_MMIO_SPI_BASE + kind.slot()
            );
        }
        assert_eq!(VirtioKind::at_slot(4), None);
        assert!(DeviceSet::ALL.contains(DeviceSet::PL011.with(DeviceSet::VIRTIO_NET)));
        assert!(!DeviceSet::PL011.contains(DeviceSet::VIRTIO_NET));
    }

    #[test]
    fn every_device_has_one_bit_and_one_name() {
        // The bits are the interface's: VmStart carries them.
        let bits: [u32; DeviceSet::COUNT] = [1, 2, 4, 8, 16, 32];
        for (i, (device, name)) in DeviceSet::EACH.into_iter().enumerate() {
            assert_eq!(device.0, bits[i], "{name}");
            assert_eq!(DeviceSet::named(name), Some(device));
            assert!(device.names().eq([name]));
        }
        assert_eq!(DeviceSet::ALL.0, 0x3f);
        assert_eq!(DeviceSet::named("pl031"), Some(DeviceSet::PL031));
        assert_eq!(DeviceSet::named("virtio-gpu"), None);
        assert_eq!(DeviceSet::NONE.names().count(), 0);
        let set = DeviceSet::VIRTIO_RNG
            .with(DeviceSet::PL011)
            .with(DeviceSet::PL031);
        assert!(
            set.names().eq(["pl011", "pl031", "virtio-rng"]),
            "in EACH order"
        );
        for kind in VirtioKind::ALL {
            let at = DeviceSet::VIRTIO_FIRST_BIT + kind.slot();
            assert_eq!(DeviceSet::EACH[at as usize].1, kind.name());
        }
    }

    #[test]
    fn default_addresses_are_unicast_and_in_their_range() {
        for (vm, nic) in [(0, 0), (5, 1), (u16::MAX, u8::MAX)] {
            let m = Mac::default_for(vm, nic);
            assert_eq!(Mac::unicast(m.octets()), Some(m));
            assert!(m.is_rhyve_default());
        }
        assert_eq!(Mac::default_for(0x0102, 3).to_string(), "02:72:68:01:02:03");
        let given = Mac::unicast([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]).unwrap();
        assert!(!given.is_rhyve_default());
        assert_eq!(given.to_string(), "52:54:00:ab:cd:ef");
    }

    #[test]
    fn vm_start_drops_unknown_device_bits() {
        let r = Request::VmStart {
            vm: VmId(0),
            ram_base: GuestPhysAddr(0x4000_0000),
            ram_size: 1 << 30,
            fault: FaultPlan::default(),
            devices: DeviceSet::ALL,
            disk: DiskSlice::WHOLE,
            mac: None,
        };
        let mut regs = r.to_regs();
        regs[5] |= 1 << 30;
        assert_eq!(Request::from_regs(regs), Some(r));
        regs[5] |= DeviceSet::FLASH.0 as u64;
        let with_flash = Request::from_regs(regs);
        assert!(
            matches!(with_flash, Some(Request::VmStart { devices, .. }) if devices == DeviceSet::ALL.with(DeviceSet::FLASH)),
            "the flash is known though no description names it"
        );
    }

    #[test]
    fn only_unicast_addresses_are_a_card_s() {
        assert_eq!(Mac::unicast([0; 6]), None, "all zeroes");
        assert_eq!(Mac::unicast([0x01, 0, 0x5e, 0, 0, 1]), None, "multicast");
        assert_eq!(Mac::unicast([0xff; 6]), None, "broadcast");
        let m = Mac::unicast([0x02, 0, 0, 0, 0, 0x01]).unwrap();
        assert_eq!(m.octets(), [0x02, 0, 0, 0, 0, 0x01]);
    }

    #[test]
    fn vm_start_carries_the_mac_above_the_vm_id() {
        let start = |mac| Request::VmStart {
            vm: VmId(5),
            ram_base: GuestPhysAddr(0x4000_0000),
            ram_size: 1 << 30,
            fault: FaultPlan::default(),
            devices: DeviceSet::ALL,
            disk: DiskSlice::WHOLE,
            mac,
        };
        let regs = start(Mac::unicast([0x52, 0x54, 0x00, 0xab, 0xcd, 0xef])).to_regs();
        assert_eq!(regs[1], 5 | 0x5254_00ab_cdef << 16);
        // Without one, x1 is the VM id alone, as before the MAC was carried.
        let none = start(None);
        assert_eq!(none.to_regs()[1], 5);
        assert_eq!(Request::from_regs(none.to_regs()), Some(none));
        // A group address is not a card's: the request is malformed.
        let mut bad = regs;
        bad[1] = 5 | 0x0100_5e00_0001 << 16;
        assert_eq!(Request::from_regs(bad), None);
    }

    #[test]
    fn the_wall_clock_runs_with_the_counter_and_never_goes_back() {
        let c = WallClock {
            seconds: 1_700_000_000,
            count: 5_000,
            frequency: 1_000,
        };
        assert_eq!(WallClock::from_regs(c.to_regs()), c);
        assert_eq!(c.seconds_at(5_000), 1_700_000_000);
        assert_eq!(c.seconds_at(5_999), 1_700_000_000, "whole seconds");
        assert_eq!(c.seconds_at(65_000), 1_700_000_060);
        assert_eq!(c.seconds_at(0), 1_700_000_000, "before the pairing");
        assert_eq!(
            c.seconds_at(u64::MAX),
            1_700_000_000 + (u64::MAX - 5_000) / 1_000
        );
        let no_freq = WallClock { frequency: 0, ..c };
        assert_eq!(no_freq.seconds_at(1 << 40), 1_700_000_000);
        let huge = WallClock {
            seconds: u64::MAX,
            ..c
        };
        assert_eq!(huge.seconds_at(1 << 40), u64::MAX, "saturates");
        assert_eq!(WallClock::default().seconds_at(123), 0, "no RTC: 1970");
    }

    #[test]
    fn host_device_pages_sit_below_the_vmm_ram() {
        let last = host_device_page(MAX_HOST_DEVICES - 1).unwrap();
        assert!(last.0 + HOST_DEVICE_STRIDE <= VMM_RAM_BASE.0);
        assert_eq!(host_device_page(MAX_HOST_DEVICES), None);
        assert_eq!(
            DiskSlice::from_regs(DiskSlice::WHOLE.to_regs()),
            DiskSlice::WHOLE
        );
    }

    #[test]
    fn windows_do_not_overlap_and_stop_at_max() {
        let a = guest_window(VmId(0)).unwrap();
        let b = guest_window(VmId(1)).unwrap();
        assert_eq!(b.0 - a.0, GUEST_WINDOW_SIZE);
        assert_eq!(guest_window(VmId(MAX_VMS as u16)), None);
        assert!(
            GUEST_WINDOW_BASE + MAX_VMS as u64 * GUEST_WINDOW_SIZE <= 1 << 39,
            "fits 39 bits"
        );
    }
}
