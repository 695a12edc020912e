//! Entropy for virtio-rng: the CPU's random number instruction (FEAT_RNG, the RNDR register,
//! Arm ARM D23.2 "RNDR, Random Number"), which QEMU's `-cpu max` and recent cores have.
//! RNDR reads set PSTATE.Z when no number could be had in reasonable time; the bytes of
//! such a read are zero and never handed out.

use aarch64_cpu::registers::ID_AA64ISAR0_EL1;
use core::arch::asm;
use tock_registers::interfaces::Readable;
use vmm::virtio::rng::{EntropyError, EntropySource};

/// Reads of RNDR tried per 8 bytes before giving up for now.
const RETRIES: usize = 16;

/// RNDR, when the CPU has it.
pub struct Rndr(());

impl Rndr {
    /// The source, if this CPU implements FEAT_RNG.
    pub fn probe() -> Option<Self> {
        (ID_AA64ISAR0_EL1.read(ID_AA64ISAR0_EL1::RNDR) != 0).then_some(Self(()))
    }
}

/// One RNDR read: the number, or `None` when the hardware had none (PSTATE.Z set).
fn rndr() -> Option<u64> {
    let value: u64;
    let ok: u64;
    // SAFETY: RNDR (S3_3_C2_C4_0) is readable at EL1 on a CPU with FEAT_RNG, which `probe`
    // checked; the read touches no memory and only the flags besides its output.
    unsafe {
        asm!(
            "mrs {v}, s3_3_c2_c4_0",
            "cset {ok}, ne",
            v = out(reg) value,
            ok = out(reg) ok,
            options(nomem, nostack)
        )
    };
    (ok != 0).then_some(value)
}

impl EntropySource for Rndr {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), EntropyError> {
        for chunk in buf.chunks_mut(8) {
            let n = (0..RETRIES)
                .find_map(|_| rndr())
                .ok_or(EntropyError::NotReady)?;
            let bytes = n.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}
