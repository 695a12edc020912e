//! rhyve's test-guest framework: small bare-metal programs that run at EL1 under rhyve, try
//! what a hostile or broken kernel would do, and check the architectural answer they get.
//!
//! The host-testable part (syndrome decoding, the expectations on an exception, the values a
//! guest writes to ICC_SGI1R_EL1) is plain Rust; [`rt`] is the bare-metal runtime (boot stub,
//! vectors, console, PSCI, GIC and timer) and exists only for `target_os = "none"`.
//!
//! Output protocol, one console line each (the harness parses it, xtask/src/scenarios/common/
//! hostile.rs):
//! ```text
//! RHYVE-TG <class> <case> PASS|FAIL <detail>
//! RHYVE-TG-DONE <class> pass=N fail=M
//! ```
//! followed by PSCI SYSTEM_OFF.
#![cfg_attr(target_os = "none", no_std)]

pub mod esr;
pub mod params;
pub mod sgi;
pub mod virtio;

#[cfg(target_os = "none")]
pub mod rt;
