//! Host tests of the virtio devices, each driving a device from the guest's side with
//! [`driver::Guest`] and asserting what the guest sees: status bytes, used lengths, the Status
//! register, and guest RAM left untouched outside the buffers it offered.

mod blk;
mod console;
mod driver;
mod net;
mod rng;
mod sweep;
mod transport;
