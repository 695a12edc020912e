//! Board support: what the device tree a board's firmware hands over cannot say.
//!
//! Hardware is discovered from that tree; what lives here is what the core needs to use it:
//! the drivers of the machine's console UART, chosen by the node's `compatible`
//! ([`console::Kind`]), the PL031 the machine's time of day is read from at boot
//! ([`pl031`]), and the quirks of boards whose tree is incomplete ([`quirks`]). Each driver
//! is tested on the host against a model of its registers.
#![cfg_attr(not(test), no_std)]

pub mod console;
pub mod pl011;
pub mod pl031;
pub mod quirks;
