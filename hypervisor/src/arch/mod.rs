//! Architecture-specific code. Only aarch64 exists; the module boundary keeps the rest of the
//! core free of inline assembly.

pub mod aarch64;
pub use aarch64::*;
