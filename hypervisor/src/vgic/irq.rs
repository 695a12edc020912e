//! Per-interrupt state of the virtual GIC, and the per-interrupt register fields (IGROUPR,
//! IS/ICENABLER, IS/ICPENDR, IS/ICACTIVER, IPRIORITYR, ICFGR) that the distributor and the
//! redistributors share (IHI 0069 12.9, 12.11).

use abi::IntId;
use tock_registers::{register_bitfields, LocalRegisterCopy};

register_bitfields! [u8,
    /// One interrupt's two bits of `GICD_ICFGR<n>` / `GICR_ICFGR<n>` (IHI 0069 12.9.9).
    pub INT_CONFIG [
        /// `Int_config[1]`: 0 level-sensitive, 1 edge-triggered (bit 0 is RES0).
        Edge OFFSET(1) NUMBITS(1) []
    ]
];

/// Priority bits the virtual CPU interface implements: five, as ICH_VTR_EL2.PRIbits reports
/// on QEMU and most cores (and as KVM models). Lower bits read as zero, as on hardware.
pub const PRIORITY_MASK: u8 = 0xf8;

/// Number of SGIs + PPIs banked per vCPU.
pub const NR_PRIVATE: usize = IntId::SPI_BASE as usize;

/// Everything the vGIC knows about one interrupt (one per SPI, one per vCPU for each SGI/PPI).
///
/// While an interrupt sits in a list register, the LR is the authority for its pending and
/// active state; `sync` folds the LR back into these fields (see `lr.rs`).
#[derive(Clone, Copy, Debug)]
pub struct IrqState {
    /// GICD_ISENABLER / GICR_ISENABLER0.
    pub enabled: bool,
    /// Pending latch: an edge seen, an ISPENDR write, an SGI, or a mapped injection.
    pub latch: bool,
    /// Input line level (SPIs raised by devices).
    pub line: bool,
    /// Active (acknowledged by the guest, not yet deactivated).
    pub active: bool,
    /// Edge-triggered (ICFGR `Int_config[1]`); SGIs are always edge.
    pub edge: bool,
    /// Group 1 (IGROUPR); group 0 otherwise.
    pub group1: bool,
    /// A hardware interrupt the core acknowledged: goes in an LR with HW=1.
    pub hw: bool,
    /// The physical INTID behind it when `hw` (the machine's own numbering, which need not
    /// be the guest's: the guest keeps QEMU virt's timer PPIs on any board).
    pub pintid: u16,
    /// IPRIORITYR byte (masked to [`PRIORITY_MASK`]).
    pub priority: u8,
    /// GICD_IROUTER value (SPIs only).
    pub route: u64,
    /// vCPU whose list registers hold this interrupt, between a flush and the next sync.
    pub owner: Option<u16>,
    /// The LR was written with the pending bit (so reads of ISPENDR see it before `sync`).
    pub lr_pending: bool,
    /// vCPU on which this interrupt is active (an SPI stays there until deactivated, whatever
    /// its route says, so that the guest's deactivation finds its LR).
    pub active_on: u16,
}

impl IrqState {
    /// Reset state. KVM and QEMU reset GICv3 interrupts to group 1, the only group a
    /// non-secure guest uses; firmware that never writes IGROUPR then still gets interrupts.
    pub const fn new(edge: bool) -> Self {
        Self {
            enabled: false,
            latch: false,
            line: false,
            active: false,
            edge,
            group1: true,
            hw: false,
            pintid: 0,
            priority: 0,
            route: 0,
            owner: None,
            lr_pending: false,
            active_on: 0,
        }
    }

    /// Whether the pending latch is consumed when the interrupt enters an LR (edge semantics),
    /// rather than when the guest acknowledges it (level semantics). Mapped interrupts are
    /// latched: each injection is one physical activation.
    pub const fn latched(&self) -> bool {
        self.edge || self.hw
    }

    /// Pending in the distributor's model (not counting a pending LR).
    pub const fn pending(&self) -> bool {
        if self.latched() {
            self.latch
        } else {
            self.latch || self.line
        }
    }

    /// Pending, enabled, and its group enabled in GICD_CTLR.
    pub const fn deliverable(&self, grp0: bool, grp1: bool) -> bool {
        let group_on = if self.group1 { grp1 } else { grp0 };
        self.pending() && self.enabled && group_on
    }
}

/// One per-interrupt field of the banked registers: how many bits each interrupt has and how
/// a read or a write of those bits acts on [`IrqState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrqField {
    /// IGROUPR.
    Group,
    /// ISENABLER (reads: enabled; writes of 1 enable).
    SetEnable,
    /// ICENABLER (reads: enabled; writes of 1 disable).
    ClearEnable,
    /// ISPENDR.
    SetPending,
    /// ICPENDR.
    ClearPending,
    /// ISACTIVER.
    SetActive,
    /// ICACTIVER.
    ClearActive,
    /// IPRIORITYR (one byte per interrupt).
    Priority,
    /// ICFGR (two bits per interrupt).
    Config,
}

/// What a write did to one interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Nothing changed.
    None,
    /// State changed; the owning vCPU must re-flush.
    Changed,
}

impl IrqField {
    /// Bits per interrupt in the register.
    pub const fn bits(self) -> u32 {
        match self {
            Self::Priority => 8,
            Self::Config => 2,
            _ => 1,
        }
    }

    /// This interrupt's bits in a read of the register.
    pub fn read(self, st: &IrqState) -> u64 {
        let bit = match self {
            Self::Group => st.group1,
            Self::SetEnable | Self::ClearEnable => st.enabled,
            Self::SetPending | Self::ClearPending => st.pending() || st.lr_pending,
            Self::SetActive | Self::ClearActive => st.active,
            Self::Priority => return u64::from(st.priority),
            Self::Config => {
                let mut cfg = LocalRegisterCopy::<u8, INT_CONFIG::Register>::new(0);
                cfg.modify(INT_CONFIG::Edge.val(u8::from(st.edge)));
                return u64::from(cfg.get());
            }
        };
        u64::from(bit)
    }

    /// Applies this interrupt's `bits` of a write. `intid` decides what is read-only (SGIs'
    /// configuration); `writer` is the vCPU recorded as the active one by ISACTIVER.
    pub fn write(self, st: &mut IrqState, intid: u32, bits: u64, writer: u16) -> Effect {
        let set = bits != 0;
        let before = (
            st.enabled,
            st.latch,
            st.active,
            st.group1,
            st.priority,
            st.edge,
        );
        match self {
            Self::Group => st.group1 = set,
            Self::SetEnable if set => st.enabled = true,
            Self::ClearEnable if set => st.enabled = false,
            Self::SetPending if set => st.latch = true,
            Self::ClearPending if set => st.latch = false,
            Self::SetActive if set => {
                if !st.active {
                    st.active_on = writer;
                }
                st.active = true;
            }
            Self::ClearActive if set => st.active = false,
            // Truncation keeps the interrupt's own byte; `bits` is at most 8 bits wide here.
            Self::Priority => st.priority = (bits & u64::from(u8::MAX)) as u8 & PRIORITY_MASK,
            // SGIs are edge-triggered, read-only (IHI 0069 12.11.7, GICR_ICFGR0).
            Self::Config if !IntId(intid).is_sgi() => {
                let cfg = LocalRegisterCopy::<u8, INT_CONFIG::Register>::new(
                    (bits & u64::from(u8::MAX)) as u8,
                );
                st.edge = cfg.is_set(INT_CONFIG::Edge);
            }
            _ => {}
        }
        let after = (
            st.enabled,
            st.latch,
            st.active,
            st.group1,
            st.priority,
            st.edge,
        );
        if before == after {
            Effect::None
        } else {
            Effect::Changed
        }
    }
}

/// A run of interrupts that one register block covers: `irqs[i]` is INTID `base + i`.
pub struct Bank<'a> {
    /// INTID of `irqs[0]`.
    pub base: u32,
    /// The interrupts.
    pub irqs: &'a mut [IrqState],
}

impl Bank<'_> {
    /// The state of `intid`, if this bank has it (anything else is RAZ/WI).
    pub fn get(&mut self, intid: u32) -> Option<&mut IrqState> {
        let index = intid.checked_sub(self.base)?;
        self.irqs.get_mut(usize::try_from(index).ok()?)
    }

    /// A `size`-byte read at byte `offset` of a register block whose first field is INTID
    /// 0's (as every GICD and GICR block is). Interrupts outside the bank read as zero.
    pub fn read(&mut self, field: IrqField, offset: u64, size: u8) -> u64 {
        let bits = field.bits();
        let mut value = 0u64;
        for (i, intid) in field_intids(field, offset, size) {
            if let Some(st) = self.get(intid) {
                value |= field.read(st) << (i * bits);
            }
        }
        value
    }

    /// A `size`-byte write at byte `offset`; calls `changed` with each interrupt it changed.
    pub fn write(
        &mut self,
        field: IrqField,
        offset: u64,
        size: u8,
        value: u64,
        writer: u16,
        mut changed: impl FnMut(u32, &IrqState),
    ) {
        let bits = field.bits();
        let mask = (1u64 << bits) - 1;
        for (i, intid) in field_intids(field, offset, size) {
            if let Some(st) = self.get(intid) {
                let field_bits = (value >> (i * bits)) & mask;
                if field.write(st, intid, field_bits, writer) == Effect::Changed {
                    changed(intid, st);
                }
            }
        }
    }
}

/// (field index within the access, INTID) for each interrupt a `size`-byte access at byte
/// `offset` of a block starting at INTID 0 covers. `size * 8` is a multiple of every field width, so fields
/// never straddle an access, and `i * bits < 64` keeps every shift in range.
fn field_intids(field: IrqField, offset: u64, size: u8) -> impl Iterator<Item = (u32, u32)> {
    let bits = field.bits();
    let per_access = u32::from(size) * 8 / bits;
    // Offsets come from a region of at most 64 KiB, so this cannot overflow; saturate anyway
    // so a bad caller only reads zeros.
    let start = u32::try_from(offset)
        .ok()
        .and_then(|o| o.checked_mul(8))
        .map_or(u32::MAX - 64, |b| b / bits);
    (0..per_access).map(move |i| (i, start.saturating_add(i)))
}
