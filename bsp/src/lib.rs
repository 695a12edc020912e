//! Board support: what the device tree a board's firmware hands over cannot say.
//!
//! Hardware is discovered from that tree; a board here adds quirks and defaults only.
#![no_std]
#![forbid(unsafe_code)]
