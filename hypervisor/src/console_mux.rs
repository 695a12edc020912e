//! The VMs' output kept apart on the machine's one console: a state machine over a byte sink,
//! so the host tests drive it; the image feeds it the UART.
//!
//! With several VMs, every line a VM prints starts with its name in brackets (`[alpha] `),
//! and a line of one source is ended before another source prints: the hypervisor's own
//! lines and the other VMs' never land in the middle of a VM's line. A VM's lines are held
//! until complete, except those of the VM that has the console input (its prompt must
//! show); when one of those is broken by other output, its rest comes on a line that starts
//! `[alpha]+ `, so the VM's own text can be put back together. With one VM its output goes
//! through as it is.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write};

/// Where the multiplexed bytes go (the console UART).
pub trait ByteSink {
    /// Sends one byte.
    fn put(&mut self, byte: u8);
}

/// Longest part of a VM's line held back while it is being written.
pub const LINE_BUF: usize = 160;

/// Who printed last, whether its line is finished, and each VM's unfinished line.
#[derive(Debug, Default)]
pub struct Mux {
    /// The VM whose line is open (None: the hypervisor).
    owner: Option<usize>,
    /// The last byte printed ended a line (or nothing was printed yet).
    mid_line: bool,
    /// The VMs' names, by id; prefixes are used only with more than one.
    names: Vec<String>,
    /// Each VM's output not printed yet (several VMs only), at most [`LINE_BUF`] bytes.
    held: Vec<Vec<u8>>,
    /// Each VM's line that other output broke.
    broken: Vec<bool>,
}

impl Mux {
    /// A console with no VM named yet.
    pub const fn new() -> Self {
        Self {
            owner: None,
            mid_line: false,
            names: Vec::new(),
            held: Vec::new(),
            broken: Vec::new(),
        }
    }

    /// Names the VMs, by id, for the prefixes of their lines (none with a single VM).
    pub fn set_vm_names<'a>(&mut self, names: impl Iterator<Item = &'a str>) {
        self.names = names.map(String::from).collect();
        self.held = self
            .names
            .iter()
            .map(|_| Vec::with_capacity(LINE_BUF))
            .collect();
        self.broken = alloc::vec![false; self.names.len()];
    }

    /// Ends the open line, if any, before other output; a VM's line is marked broken.
    fn end_open_line(&mut self, out: &mut impl ByteSink) {
        if self.mid_line {
            out.put(b'\r');
            out.put(b'\n');
            self.mid_line = false;
            if let Some(b) = self.owner.and_then(|o| self.broken.get_mut(o)) {
                *b = true;
            }
        }
    }

    /// Prints `data` of VM `vm`, prefixed with `name` at the start of each line if given.
    fn emit(&mut self, out: &mut impl ByteSink, vm: usize, prefix: bool, data: &[u8]) {
        for &b in data {
            if prefix {
                if self.owner != Some(vm) {
                    self.end_open_line(out);
                }
                let broken = self.broken.get(vm).copied().unwrap_or(false);
                if !self.mid_line && broken && (b == b'\r' || b == b'\n') {
                    // Other output already ended this VM's broken line, and all that is left
                    // of it is its end: printing that would make an empty line, and the `+`
                    // would then mark the VM's next line as a continuation.
                    if b == b'\n' {
                        if let Some(f) = self.broken.get_mut(vm) {
                            *f = false;
                        }
                    }
                    continue;
                }
                if !self.mid_line && b != b'\r' && b != b'\n' {
                    out.put(b'[');
                    if let Some(name) = self.names.get(vm) {
                        name.bytes().for_each(|c| out.put(c));
                    }
                    out.put(b']');
                    if let Some(broken) = self.broken.get_mut(vm) {
                        if core::mem::take(broken) {
                            out.put(b'+');
                        }
                    }
                    out.put(b' ');
                }
            }
            out.put(b);
            self.owner = Some(vm);
            if b == b'\n' {
                self.mid_line = false;
            } else if b != b'\r' {
                self.mid_line = true;
            }
        }
    }

    /// Writes output of VM `vm`: as it is when it is the only VM. With several, whole lines
    /// with its name in front; the unfinished end of a line waits for the rest, except for the
    /// VM that has the console input (`focus`), whose prompt must show.
    pub fn guest_output(&mut self, out: &mut impl ByteSink, vm: usize, focus: usize, bytes: &[u8]) {
        if self.names.len() <= 1 {
            self.emit(out, vm, false, bytes);
            return;
        }
        let Some(held) = self.held.get_mut(vm) else {
            return;
        };
        let mut held = core::mem::take(held);
        for &b in bytes {
            held.push(b);
            if b == b'\n' || held.len() == LINE_BUF {
                self.emit(out, vm, true, &held);
                held.clear();
            }
        }
        if vm == focus && !held.is_empty() {
            self.emit(out, vm, true, &held);
            held.clear();
        }
        if let Some(h) = self.held.get_mut(vm) {
            *h = held;
        }
    }

    /// Forgets what VM `vm` left unprinted or broken: it starts afresh (a reset, a restart).
    pub fn vm_restarted(&mut self, vm: usize) {
        if let Some(h) = self.held.get_mut(vm) {
            h.clear();
        }
        if let Some(b) = self.broken.get_mut(vm) {
            *b = false;
        }
    }

    /// Writes formatted text of the hypervisor's own (the logger, the monitor) on a line of its
    /// own; `\n` goes out as `\r\n`.
    pub fn write_own(&mut self, out: &mut impl ByteSink, args: fmt::Arguments<'_>) {
        self.end_open_line(out);
        let mut w = Crlf { out, last: b'\n' };
        let _ = w.write_fmt(args);
        let last = w.last;
        self.owner = None;
        self.mid_line = last != b'\n';
    }

    /// Writes what the monitor echoes of a typed line: on the hypervisor's own open line (the
    /// `rhyve> ` prompt), or on a line of its own if a VM's line is open.
    pub fn echo(&mut self, out: &mut impl ByteSink, bytes: &[u8]) {
        if self.owner.is_some() {
            self.end_open_line(out);
        }
        for &b in bytes {
            if b == b'\n' {
                out.put(b'\r');
            }
            out.put(b);
        }
        self.owner = None;
        if let Some(&last) = bytes.last() {
            self.mid_line = last != b'\n';
        }
    }
}

/// A sink that writes text with `\r\n` line ends, remembering the last byte.
struct Crlf<'a, S: ByteSink> {
    out: &'a mut S,
    last: u8,
}

impl<S: ByteSink> Write for Crlf<'_, S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                self.out.put(b'\r');
            }
            self.out.put(b);
            self.last = b;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ByteSink for Vec<u8> {
        fn put(&mut self, byte: u8) {
            self.push(byte);
        }
    }

    fn text(out: &[u8]) -> &str {
        core::str::from_utf8(out).unwrap()
    }

    fn two() -> Mux {
        let mut m = Mux::new();
        m.set_vm_names(["alpha", "beta"].into_iter());
        m
    }

    #[test]
    fn one_vm_goes_through_as_it_is() {
        let mut m = Mux::new();
        m.set_vm_names(["only"].into_iter());
        let mut out = Vec::new();
        m.guest_output(&mut out, 0, 0, b"login: ");
        m.guest_output(&mut out, 0, 0, b"root\r\n");
        assert_eq!(text(&out), "login: root\r\n");
    }

    #[test]
    fn several_vms_print_whole_named_lines() {
        let mut m = two();
        let mut out = Vec::new();
        // beta does not have the input: its half line waits for the rest.
        m.guest_output(&mut out, 1, 0, b"tick ");
        assert_eq!(text(&out), "");
        m.guest_output(&mut out, 0, 0, b"hello\n");
        m.guest_output(&mut out, 1, 0, b"1\n");
        assert_eq!(text(&out), "[alpha] hello\n[beta] tick 1\n");
    }

    #[test]
    fn the_focused_vms_prompt_shows_and_a_broken_line_continues_with_plus() {
        let mut m = two();
        let mut out = Vec::new();
        m.guest_output(&mut out, 0, 0, b"# ");
        assert_eq!(text(&out), "[alpha] # ");
        m.guest_output(&mut out, 1, 0, b"boot\n");
        m.guest_output(&mut out, 0, 0, b"ls\n");
        assert_eq!(text(&out), "[alpha] # \r\n[beta] boot\n[alpha]+ ls\n");
    }

    #[test]
    fn a_broken_line_whose_rest_is_only_its_end_adds_no_empty_line() {
        let mut m = two();
        let mut out = Vec::new();
        m.guest_output(&mut out, 0, 0, b"# ");
        m.write_own(&mut out, format_args!("rhyve: note\n"));
        m.guest_output(&mut out, 0, 0, b"\r\n");
        m.guest_output(&mut out, 0, 0, b"next\n");
        assert_eq!(text(&out), "[alpha] # \r\nrhyve: note\r\n[alpha] next\n");
    }

    #[test]
    fn long_lines_are_cut_at_the_buffer() {
        let mut m = two();
        let mut out = Vec::new();
        let long = [b'x'; LINE_BUF + 10];
        m.guest_output(&mut out, 1, 0, &long);
        let printed = text(&out);
        assert!(printed.starts_with("[beta] "));
        assert_eq!(printed.len(), "[beta] ".len() + LINE_BUF);
    }

    #[test]
    fn hypervisor_text_ends_an_open_line_and_echo_stays_on_the_prompt() {
        let mut m = two();
        let mut out = Vec::new();
        m.guest_output(&mut out, 0, 0, b"half");
        m.write_own(&mut out, format_args!("rhyve> "));
        m.echo(&mut out, b"li");
        m.echo(&mut out, b"st\n");
        assert_eq!(text(&out), "[alpha] half\r\nrhyve> list\r\n");
    }

    #[test]
    fn a_restarted_vm_forgets_its_held_and_broken_line() {
        let mut m = two();
        let mut out = Vec::new();
        m.guest_output(&mut out, 1, 0, b"lost");
        m.vm_restarted(1);
        m.guest_output(&mut out, 1, 0, b"fresh\n");
        assert_eq!(text(&out), "[beta] fresh\n");
        // Unknown VMs are ignored, not a panic.
        m.guest_output(&mut out, 7, 0, b"x\n");
        m.vm_restarted(7);
        assert_eq!(text(&out), "[beta] fresh\n");
    }
}
