//! The Arm PrimeCell PL031 real-time clock (DDI 0224), read once at boot for the machine's
//! time of day.

use tock_registers::interfaces::Readable;
use tock_registers::register_structs;
use tock_registers::registers::ReadOnly;

/// The `compatible` of a PL031 node.
pub const COMPATIBLE: &str = "arm,pl031";

register_structs! {
    /// The registers the driver uses.
    pub Pl031Regs {
        /// RTCDR (§3.3.1): the counter, seconds since the Unix epoch as firmware keeps it.
        (0x000 => dr: ReadOnly<u32>),
        (0x004 => @END),
    }
}

/// The seconds the PL031 whose register frame is at `base` counts now.
///
/// # Safety
/// `base` must be the address of a PL031 frame (or of memory laid out as one), accessible as
/// device memory; reading RTCDR has no side effect.
pub unsafe fn read_seconds(base: usize) -> Option<u32> {
    let regs = core::ptr::NonNull::new(base as *mut Pl031Regs)?;
    // SAFETY: the caller's contract: a valid, accessible frame.
    Some(unsafe { regs.as_ref() }.dr.get())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_data_register() {
        let mut frame = [0u32; core::mem::size_of::<Pl031Regs>() / 4];
        frame[core::mem::offset_of!(Pl031Regs, dr) / 4] = 1_700_000_000;
        // SAFETY: the array is laid out as the frame and outlives the call.
        let secs = unsafe { read_seconds(frame.as_mut_ptr() as usize) };
        assert_eq!(secs, Some(1_700_000_000));
        // SAFETY: a null base is refused before any access.
        assert_eq!(unsafe { read_seconds(0) }, None);
    }
}
