//! TLB maintenance for the translation regimes the core switches between.

/// Drops this CPU's stage-1 and stage-2 TLB entries of the VMID in VTTBR_EL2 (a vCPU or the
/// VMM partition starting afresh, or another vCPU of the same VM taking the CPU: it must not
/// use entries whose local invalidations it did not see).
#[inline]
pub fn flush_guest_local() {
    // SAFETY: TLB invalidation only discards cached translations; the barriers order it
    // before the next guest access.
    unsafe { core::arch::asm!("tlbi vmalls12e1", "dsb nsh", "isb", options(nostack)) };
}

/// Drops every CPU's stage-1 and stage-2 TLB entries of the VMID in VTTBR_EL2 (inner
/// shareable broadcast): after a mapping of that VM was removed.
#[inline]
pub fn flush_guest_all() {
    // SAFETY: as above; the ISB makes a VTTBR_EL2 just written (the VM's, back from an
    // upcall) the one whose VMID is invalidated, the DSB ISH waits for every CPU to complete
    // the invalidation.
    unsafe {
        core::arch::asm!(
            "isb",
            "dsb ishst",
            "tlbi vmalls12e1is",
            "dsb ish",
            "isb",
            options(nostack)
        )
    };
}
