//! Where a VM's virtio-console ports write: port 0 (the guest's hvc0) straight to the machine
//! console, as the UART does; port 1 line by line, each line tagged with the VM and the port
//! (`[VM 0 port 1] text`), so that its output stays apart from the console's even when both
//! are on one terminal.

use super::hvc;
use abi::VmId;
use core::fmt::Write;
use vmm::virtio::console::{ConsoleBackend, LineSplitter};

/// Longest tagged line; a longer one is cut into several, each tagged.
const LINE: usize = 120;

/// One port's output.
pub struct PortOut {
    vm: VmId,
    /// `None` for the console port (bytes go out as they come); the port number otherwise.
    tagged: Option<u8>,
    lines: LineSplitter<LINE>,
}

impl PortOut {
    /// VM `vm`'s console port (hvc0).
    pub fn console(vm: VmId) -> Self {
        Self {
            vm,
            tagged: None,
            lines: LineSplitter::default(),
        }
    }

    /// VM `vm`'s port `port`, printed by tagged lines.
    pub fn tagged(vm: VmId, port: u8) -> Self {
        Self {
            tagged: Some(port),
            ..Self::console(vm)
        }
    }
}

impl ConsoleBackend for PortOut {
    fn output(&mut self, bytes: &[u8]) {
        let Some(port) = self.tagged else {
            hvc::console_write(self.vm, bytes);
            return;
        };
        let vm = self.vm;
        self.lines.push(bytes, |text| {
            let mut out = Line::default();
            let _ = write!(out, "[VM {} port {port}] ", vm.0);
            out.push(text);
            out.push(b"\r\n");
            hvc::console_write(vm, out.as_bytes());
        });
    }
}

/// A tagged line being put together (no allocation).
struct Line {
    buf: [u8; LINE + 32],
    len: usize,
}

impl Default for Line {
    fn default() -> Self {
        Self {
            buf: [0; LINE + 32],
            len: 0,
        }
    }
}

impl Line {
    fn push(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}
