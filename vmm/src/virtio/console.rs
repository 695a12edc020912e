//! virtio-console (device ID 3, virtio 1.2 §5.3) with VIRTIO_CONSOLE_F_MULTIPORT and two ports:
//! port 0 is the guest's console (hvc0), port 1 a named serial port (`/dev/vport0p1`, linked
//! from `/dev/virtio-ports/NAME` by udev).
//!
//! Queues (§5.3.2): 0/1 receive/transmit of port 0, 2/3 control receive/transmit, 4/5
//! receive/transmit of port 1. A driver that does not negotiate MULTIPORT gets port 0 only.
//!
//! The multiport handshake (§5.3.6.2): the driver sends DEVICE_READY; the device answers
//! DEVICE_ADD for each port; the driver sends PORT_READY for each; the device answers with
//! CONSOLE_PORT for port 0, PORT_NAME for a named port and PORT_OPEN (the host side is always
//! connected, so the guest may write at once). The guest's PORT_OPEN says whether a program has
//! the port open.
//!
//! Output goes straight to the port's [`ConsoleBackend`]; input is queued by the VMM with
//! [`VirtioConsole::push_input`] (bounded) and delivered on [`super::MmioTransport::poll`] as the
//! guest posts receive buffers. Control messages wait in a bounded queue likewise.

use super::queue::{Queue, QueueError};
use super::{device_id, read_config_bytes, VirtioDevice};
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use vmboot::memory::GuestMemory;

/// Number of ports (`max_nr_ports`).
pub const NR_PORTS: usize = 2;
/// Size of each queue.
pub const QUEUE_SIZE: u16 = 64;
/// Input bytes held per port before [`VirtioConsole::push_input`] refuses more.
pub const INPUT_CAPACITY: usize = 4096;
/// Control messages held for the guest.
const CONTROL_CAPACITY: usize = 32;
/// Longest port name.
pub const MAX_NAME: usize = 64;
/// Bytes moved per step.
const SCRATCH_BYTES: usize = 4096;

/// Feature bits (§5.3.3).
pub mod feature {
    /// Several ports, with control queues.
    pub const MULTIPORT: u64 = 1 << 1;
}

/// Control events (§5.3.6.2).
pub mod event {
    /// Driver: ready for DEVICE_ADD.
    pub const DEVICE_READY: u16 = 0;
    /// Device: a port exists.
    pub const DEVICE_ADD: u16 = 1;
    /// Device: a port is gone.
    pub const DEVICE_REMOVE: u16 = 2;
    /// Driver: port set up (value 1) or failed (0).
    pub const PORT_READY: u16 = 3;
    /// Device: this port is a console.
    pub const CONSOLE_PORT: u16 = 4;
    /// Device: console size changed.
    pub const RESIZE: u16 = 5;
    /// Either: the port was opened (1) or closed (0) on the sender's side.
    pub const PORT_OPEN: u16 = 6;
    /// Device: the port's name follows the message.
    pub const PORT_NAME: u16 = 7;
}

/// `struct virtio_console_control`: `le32 id; le16 event; le16 value` (§5.3.6.2).
const CONTROL_BYTES: usize = 8;

/// Queue indices (§5.3.2).
mod queues {
    pub const CONTROL_RX: u16 = 2;
    pub const CONTROL_TX: u16 = 3;

    /// The receive queue of `port`.
    pub fn rx(port: usize) -> u16 {
        if port == 0 {
            0
        } else {
            2 + 2 * port as u16
        }
    }

    /// The port whose transmit queue is `queue`.
    pub fn tx_port(queue: u16) -> Option<usize> {
        match queue {
            1 => Some(0),
            q if q > 3 && q % 2 == 1 => Some(usize::from((q - 2) / 2)),
            _ => None,
        }
    }
}

/// Where a port's output goes.
pub trait ConsoleBackend {
    /// Bytes the guest wrote to the port.
    fn output(&mut self, bytes: &[u8]);
}

/// Cuts a port's output into lines (for a backend that prints each line with a tag): bytes
/// are kept until a newline, or until `N` of them make a line of their own; carriage
/// returns are dropped. No allocation.
#[derive(Debug)]
pub struct LineSplitter<const N: usize> {
    line: [u8; N],
    len: usize,
}

impl<const N: usize> Default for LineSplitter<N> {
    fn default() -> Self {
        Self {
            line: [0; N],
            len: 0,
        }
    }
}

impl<const N: usize> LineSplitter<N> {
    /// Takes `bytes`; calls `line` with each line completed (without its newline).
    pub fn push(&mut self, bytes: &[u8], mut line: impl FnMut(&[u8])) {
        for &b in bytes {
            match b {
                b'\n' => self.emit(&mut line),
                b'\r' => {}
                _ => {
                    if self.len == N {
                        self.emit(&mut line);
                    }
                    if let Some(slot) = self.line.get_mut(self.len) {
                        *slot = b;
                        self.len += 1;
                    }
                }
            }
        }
    }

    fn emit(&mut self, line: &mut impl FnMut(&[u8])) {
        line(self.line.get(..self.len).unwrap_or(&[]));
        self.len = 0;
    }
}

/// One control message on its way to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ControlMsg {
    id: u32,
    event: u16,
    value: u16,
}

#[derive(Debug)]
struct Port<B> {
    backend: B,
    input: VecDeque<u8>,
    name: Option<&'static str>,
    /// The guest set the port up (PORT_READY 1).
    ready: bool,
    /// A guest program has the port open (PORT_OPEN from the guest).
    guest_open: bool,
}

/// A virtio-console device with [`NR_PORTS`] ports.
#[derive(Debug)]
pub struct VirtioConsole<B> {
    ports: [Port<B>; NR_PORTS],
    multiport: bool,
    control: VecDeque<ControlMsg>,
    scratch: Vec<u8>,
    queue_sizes: [u16; 2 * (NR_PORTS + 1)],
    /// Input bytes refused because a port's queue was full.
    pub input_dropped: u64,
}

impl<B: ConsoleBackend> VirtioConsole<B> {
    /// A console whose port 0 writes to `console` and port 1 to `port1`, named `port1_name`
    /// (at most [`MAX_NAME`] bytes; longer names are cut).
    pub fn new(console: B, port1: B, port1_name: &'static str) -> Self {
        let port = |backend, name| Port {
            backend,
            input: VecDeque::with_capacity(INPUT_CAPACITY),
            name,
            ready: false,
            guest_open: false,
        };
        Self {
            ports: [port(console, None), port(port1, Some(port1_name))],
            multiport: false,
            control: VecDeque::with_capacity(CONTROL_CAPACITY),
            scratch: vec![0; SCRATCH_BYTES],
            queue_sizes: [QUEUE_SIZE; 2 * (NR_PORTS + 1)],
            input_dropped: 0,
        }
    }

    /// The backend of `port`.
    pub fn backend(&self, port: usize) -> Option<&B> {
        self.ports.get(port).map(|p| &p.backend)
    }

    /// Queues `bytes` of input for `port`; returns how many fit (the rest is the caller's to
    /// offer again, or lose). Call [`super::MmioTransport::poll`] to deliver.
    pub fn push_input(&mut self, port: usize, bytes: &[u8]) -> usize {
        let Some(p) = self.ports.get_mut(port) else {
            return 0;
        };
        let n = bytes.len().min(INPUT_CAPACITY - p.input.len());
        p.input.extend(bytes.iter().take(n));
        self.input_dropped += (bytes.len() - n) as u64;
        n
    }

    /// Whether a guest program has `port` open.
    pub fn is_open(&self, port: usize) -> bool {
        self.ports.get(port).is_some_and(|p| p.guest_open)
    }

    /// Whether the guest driver set `port` up.
    pub fn is_ready(&self, port: usize) -> bool {
        self.ports.get(port).is_some_and(|p| p.ready)
    }

    fn send_control(&mut self, id: u32, event: u16, value: u16) {
        if self.control.len() < CONTROL_CAPACITY {
            self.control.push_back(ControlMsg { id, event, value });
        }
    }

    /// Hands the guest's transmit buffers of `port` to its backend.
    fn transmit(
        &mut self,
        port: usize,
        q: &mut Queue,
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        while let Some(chain) = q.pop(mem)? {
            let mut reader = chain.reader();
            loop {
                let n = reader.read(mem, &mut self.scratch)?;
                if n == 0 {
                    break;
                }
                if let (Some(p), Some(bytes)) = (self.ports.get_mut(port), self.scratch.get(..n)) {
                    p.backend.output(bytes);
                }
            }
            q.add_used(mem, chain.head(), 0)?;
        }
        Ok(())
    }

    /// Acts on the driver's control messages (§5.3.6.2).
    fn control_in(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        while let Some(chain) = q.pop(mem)? {
            let mut msg = [0u8; CONTROL_BYTES];
            let n = chain.reader().read(mem, &mut msg)?;
            q.add_used(mem, chain.head(), 0)?;
            if n < CONTROL_BYTES {
                continue;
            }
            let [i0, i1, i2, i3, e0, e1, v0, v1] = msg;
            let id = u32::from_le_bytes([i0, i1, i2, i3]);
            let event = u16::from_le_bytes([e0, e1]);
            let value = u16::from_le_bytes([v0, v1]);
            self.on_control(id, event, value);
        }
        Ok(())
    }

    fn on_control(&mut self, id: u32, event: u16, value: u16) {
        match event {
            event::DEVICE_READY if value == 1 => {
                for p in 0..NR_PORTS as u32 {
                    self.send_control(p, event::DEVICE_ADD, 0);
                }
            }
            event::PORT_READY => {
                let Some(port) = self.ports.get_mut(id as usize) else {
                    return;
                };
                port.ready = value == 1;
                if !port.ready {
                    return;
                }
                let named = port.name.is_some();
                if id == 0 {
                    self.send_control(id, event::CONSOLE_PORT, 1);
                }
                if named {
                    self.send_control(id, event::PORT_NAME, 0);
                }
                // The host side of every port is always connected.
                self.send_control(id, event::PORT_OPEN, 1);
            }
            event::PORT_OPEN => {
                if let Some(port) = self.ports.get_mut(id as usize) {
                    port.guest_open = value == 1;
                }
            }
            // DEVICE_READY with a failure value, or events only a device sends: nothing to do.
            _ => {}
        }
    }

    /// Delivers waiting control messages into the control receive queue.
    fn control_out(&mut self, q: &mut Queue, mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        while let Some(msg) = self.control.front().copied() {
            let Some(chain) = q.pop(mem)? else {
                break;
            };
            let mut bytes = [0u8; CONTROL_BYTES + MAX_NAME];
            bytes[..4].copy_from_slice(&msg.id.to_le_bytes());
            bytes[4..6].copy_from_slice(&msg.event.to_le_bytes());
            bytes[6..8].copy_from_slice(&msg.value.to_le_bytes());
            let mut len = CONTROL_BYTES;
            if msg.event == event::PORT_NAME {
                let name = self
                    .ports
                    .get(msg.id as usize)
                    .and_then(|p| p.name)
                    .unwrap_or("");
                let n = name.len().min(MAX_NAME);
                bytes[CONTROL_BYTES..CONTROL_BYTES + n].copy_from_slice(&name.as_bytes()[..n]);
                len += n;
            }
            let written = chain.writer().write(mem, &bytes[..len])?;
            q.add_used(mem, chain.head(), written as u32)?;
            self.control.pop_front();
        }
        Ok(())
    }

    /// Delivers waiting input of `port` into its receive queue.
    fn receive(
        &mut self,
        port: usize,
        q: &mut Queue,
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        let Some(p) = self.ports.get_mut(port) else {
            return Ok(());
        };
        while !p.input.is_empty() {
            let Some(chain) = q.pop(mem)? else {
                break;
            };
            let mut writer = chain.writer();
            let mut written = 0usize;
            while !p.input.is_empty() {
                let (front, _) = p.input.as_slices();
                let n = writer.write(mem, front)?;
                if n == 0 {
                    break;
                }
                p.input.drain(..n);
                written += n;
            }
            q.add_used(mem, chain.head(), written as u32)?;
        }
        Ok(())
    }

    /// Everything the device can hand the guest now.
    fn deliver(
        &mut self,
        queues: &mut [Queue],
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        if self.multiport {
            if let Some(q) = queues.get_mut(usize::from(queues::CONTROL_RX)) {
                self.control_out(q, mem)?;
            }
        }
        let ports = if self.multiport { NR_PORTS } else { 1 };
        for port in 0..ports {
            if let Some(q) = queues.get_mut(usize::from(queues::rx(port))) {
                self.receive(port, q, mem)?;
            }
        }
        Ok(())
    }
}

impl<B: ConsoleBackend> VirtioDevice for VirtioConsole<B> {
    fn device_id(&self) -> u32 {
        device_id::CONSOLE
    }

    fn device_features(&self) -> u64 {
        feature::MULTIPORT
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &self.queue_sizes
    }

    /// §5.3.4: `le16 cols; le16 rows; le32 max_nr_ports; le32 emerg_wr` (no SIZE, no
    /// EMERG_WRITE offered, so only `max_nr_ports` means anything).
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut c = [0u8; 12];
        c[4..8].copy_from_slice(&(NR_PORTS as u32).to_le_bytes());
        read_config_bytes(&c, offset, data);
    }

    fn activate(&mut self, features: u64) {
        self.multiport = features & feature::MULTIPORT != 0;
    }

    fn process(
        &mut self,
        queue: u16,
        queues: &mut [Queue],
        mem: &mut dyn GuestMemory,
    ) -> Result<(), QueueError> {
        if let Some(port) = queues::tx_port(queue) {
            if port < NR_PORTS && (port == 0 || self.multiport) {
                if let Some(q) = queues.get_mut(usize::from(queue)) {
                    self.transmit(port, q, mem)?;
                }
            }
        } else if queue == queues::CONTROL_TX && self.multiport {
            if let Some(q) = queues.get_mut(usize::from(queue)) {
                self.control_in(q, mem)?;
            }
        }
        self.deliver(queues, mem)
    }

    fn poll(&mut self, queues: &mut [Queue], mem: &mut dyn GuestMemory) -> Result<(), QueueError> {
        self.deliver(queues, mem)
    }

    fn reset(&mut self) {
        self.multiport = false;
        self.control.clear();
        for p in &mut self.ports {
            p.ready = false;
            p.guest_open = false;
        }
    }
}
