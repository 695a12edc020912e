//! Board support: what the device tree a board's firmware hands over cannot say.
//!
//! Hardware is discovered from that tree; what lives here is what the core needs to use it:
//! the drivers of the machine's console UART, chosen by the node's `compatible`
//! ([`console::Kind`]): the PL011 ([`pl011`]), the 16550 family and the DesignWare UART
//! ([`ns16550`]), the i.MX UART ([`imx`]) and the Cadence UART ([`cadence`]); the console a
//! command line's `earlycon=` names ([`earlycon`]); the PL031 the machine's time of day is
//! read from at boot ([`pl031`]); and the quirks of boards whose tree is incomplete
//! ([`quirks`]). Each driver reaches its registers through a [`bus::Bus`] (or, the PL011's,
//! a register block) and is tested on the host against a model of them.
#![cfg_attr(not(test), no_std)]

pub mod bus;
pub mod cadence;
pub mod console;
pub mod earlycon;
pub mod imx;
pub mod ns16550;
pub mod pl011;
pub mod pl031;
pub mod quirks;
