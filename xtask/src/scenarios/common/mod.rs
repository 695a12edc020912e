//! What several scenarios share. Nothing here is a scenario itself: the scenario files are the
//! ones directly in `src/scenarios/`, which `build.rs` registers.

pub mod hostile;
pub mod vm_output;
pub mod vms;
