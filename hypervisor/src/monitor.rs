//! Who the console's input goes to, and the monitor's command line: what each typed byte
//! means, as a state machine the host tests drive. The image carries out the actions.
//!
//! Typed bytes go to one VM at a time (at boot, VM 0). `Ctrl-]` (0x1d) starts an escape: the
//! next key picks where input goes: `0`-`9` a VM by id, `m` the monitor; `Ctrl-]` again sends
//! one `Ctrl-]` to the VM. The monitor reads a line at a time:
//!
//! | command | what it does |
//! |---|---|
//! | `help` | lists the commands |
//! | `list` | each VM: id, name, state; each vCPU: its CPU and state |
//! | `stats` | each VM's exits by reason (mmio, hvc, sysreg, wfi, irq, timer, kick, other) |
//! | `stop VM` | stops a VM (VM: its id or name) |
//! | `start VM` | starts a stopped VM afresh, reloaded from its description |
//! | `reset VM` | resets a running VM (the same as the guest asking for it) |
//! | `poweroff` | powers the machine off |

/// The escape key: Ctrl-].
pub const ESCAPE: u8 = 0x1d;
/// Longest command line.
pub const LINE_MAX: usize = 64;

/// Where typed input goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Focus {
    /// A VM, by id.
    Vm(usize),
    /// The monitor.
    Monitor,
}

/// What one typed byte asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing to do (an escape started, an ignored key).
    None,
    /// Give the byte to this VM.
    ToVm(usize, u8),
    /// Input now goes to this VM.
    Focused(Focus),
    /// The escape named a VM that does not exist.
    NoSuchVm(usize),
    /// Echo this byte of the command line.
    Echo(u8),
    /// Erase the last byte of the command line.
    Erase,
    /// A command line was entered.
    Entered(CommandLine),
}

/// One entered command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandLine {
    bytes: [u8; LINE_MAX],
    len: usize,
}

impl CommandLine {
    /// The line, trimmed (only printable ASCII is ever stored).
    pub fn text(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len])
            .unwrap_or("")
            .trim()
    }
}

/// The console input's state: the focus, a pending escape, the monitor's line.
#[derive(Debug)]
pub struct Keys {
    focus: Focus,
    escape: bool,
    line: CommandLine,
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

impl Keys {
    /// Input to VM 0, nothing typed.
    pub const fn new() -> Self {
        Self {
            focus: Focus::Vm(0),
            escape: false,
            line: CommandLine {
                bytes: [0; LINE_MAX],
                len: 0,
            },
        }
    }

    /// Where input goes now.
    pub fn focus(&self) -> Focus {
        self.focus
    }

    /// Takes one typed byte on a machine of `nr_vms` VMs.
    pub fn feed(&mut self, b: u8, nr_vms: usize) -> Action {
        if core::mem::take(&mut self.escape) {
            return match b {
                ESCAPE => match self.focus {
                    Focus::Vm(id) => Action::ToVm(id, b),
                    Focus::Monitor => Action::None,
                },
                b'm' | b'M' => {
                    self.focus = Focus::Monitor;
                    Action::Focused(self.focus)
                }
                b'0'..=b'9' => {
                    let id = usize::from(b - b'0');
                    if id < nr_vms {
                        self.focus = Focus::Vm(id);
                        Action::Focused(self.focus)
                    } else {
                        Action::NoSuchVm(id)
                    }
                }
                _ => Action::None,
            };
        }
        if b == ESCAPE {
            self.escape = true;
            return Action::None;
        }
        if let Focus::Vm(id) = self.focus {
            return Action::ToVm(id, b);
        }
        let line = &mut self.line;
        match b {
            b'\r' | b'\n' => {
                let entered = *line;
                line.len = 0;
                Action::Entered(entered)
            }
            // Backspace / DEL.
            0x08 | 0x7f if line.len > 0 => {
                line.len -= 1;
                Action::Erase
            }
            0x20..=0x7e if line.len < LINE_MAX => {
                line.bytes[line.len] = b;
                line.len += 1;
                Action::Echo(b)
            }
            _ => Action::None,
        }
    }
}

/// A monitor command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command<'a> {
    /// An empty line.
    Empty,
    /// `help`.
    Help,
    /// `list`.
    List,
    /// `stats`.
    Stats,
    /// `stop VM`.
    Stop(&'a str),
    /// `start VM`.
    Start(&'a str),
    /// `reset VM`.
    Reset(&'a str),
    /// `poweroff`.
    PowerOff,
    /// Anything else (a command without its VM too).
    Unknown,
}

/// The command a line names.
pub fn parse(line: &str) -> Command<'_> {
    let mut words = line.split_whitespace();
    match (words.next(), words.next()) {
        (None, _) => Command::Empty,
        (Some("help"), _) => Command::Help,
        (Some("list"), _) => Command::List,
        (Some("stats"), _) => Command::Stats,
        (Some("stop"), Some(vm)) => Command::Stop(vm),
        (Some("start"), Some(vm)) => Command::Start(vm),
        (Some("reset"), Some(vm)) => Command::Reset(vm),
        (Some("poweroff"), _) => Command::PowerOff,
        _ => Command::Unknown,
    }
}

/// The VM a command argument names: its id, else its name (`names` by id).
pub fn find_vm<'a>(arg: &str, names: impl Iterator<Item = &'a str> + Clone) -> Option<usize> {
    let by_id = arg
        .parse::<usize>()
        .ok()
        .filter(|&id| id < names.clone().count());
    by_id.or_else(|| names.into_iter().position(|n| n == arg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(keys: &mut Keys, bytes: &[u8], nr_vms: usize) -> std::vec::Vec<Action> {
        bytes.iter().map(|&b| keys.feed(b, nr_vms)).collect()
    }

    #[test]
    fn input_goes_to_vm_0_until_an_escape_moves_it() {
        let mut k = Keys::new();
        assert_eq!(k.feed(b'a', 2), Action::ToVm(0, b'a'));
        assert_eq!(
            typed(&mut k, &[ESCAPE, b'1', b'x'], 2),
            [
                Action::None,
                Action::Focused(Focus::Vm(1)),
                Action::ToVm(1, b'x')
            ]
        );
        // Ctrl-] twice sends one Ctrl-] to the VM.
        assert_eq!(
            typed(&mut k, &[ESCAPE, ESCAPE], 2),
            [Action::None, Action::ToVm(1, ESCAPE)]
        );
        // A VM that does not exist: the focus stays.
        assert_eq!(
            typed(&mut k, &[ESCAPE, b'7'], 2),
            [Action::None, Action::NoSuchVm(7)]
        );
        assert_eq!(k.focus(), Focus::Vm(1));
    }

    #[test]
    fn the_monitor_reads_a_line_with_backspace() {
        let mut k = Keys::new();
        typed(&mut k, &[ESCAPE, b'm'], 1);
        assert_eq!(k.focus(), Focus::Monitor);
        let acts = typed(&mut k, b"lisx\x7ft", 1);
        assert_eq!(acts[3], Action::Echo(b'x'));
        assert_eq!(acts[4], Action::Erase);
        let Action::Entered(line) = k.feed(b'\r', 1) else {
            panic!("no line")
        };
        assert_eq!(line.text(), "list");
        // The next line starts empty; backspace on it does nothing.
        assert_eq!(k.feed(0x08, 1), Action::None);
        let Action::Entered(line) = k.feed(b'\n', 1) else {
            panic!("no line")
        };
        assert_eq!(line.text(), "");
        // Ctrl-] twice in the monitor sends nothing anywhere.
        assert_eq!(typed(&mut k, &[ESCAPE, ESCAPE], 1), [Action::None; 2]);
    }

    #[test]
    fn a_long_line_stops_at_its_limit_and_controls_are_ignored() {
        let mut k = Keys::new();
        typed(&mut k, &[ESCAPE, b'm'], 1);
        let long = [b'x'; LINE_MAX + 5];
        let acts = typed(&mut k, &long, 1);
        assert!(acts[..LINE_MAX].iter().all(|a| *a == Action::Echo(b'x')));
        assert!(acts[LINE_MAX..].iter().all(|a| *a == Action::None));
        assert_eq!(k.feed(0x01, 1), Action::None);
        assert_eq!(k.feed(0xff, 1), Action::None);
        let Action::Entered(line) = k.feed(b'\r', 1) else {
            panic!("no line")
        };
        assert_eq!(line.text().len(), LINE_MAX);
    }

    #[test]
    fn commands() {
        assert_eq!(parse("   "), Command::Empty);
        assert_eq!(parse("help"), Command::Help);
        assert_eq!(parse("list extra"), Command::List);
        assert_eq!(parse("stats"), Command::Stats);
        assert_eq!(parse("stop alpha"), Command::Stop("alpha"));
        assert_eq!(parse("start 1"), Command::Start("1"));
        assert_eq!(parse("reset  beta "), Command::Reset("beta"));
        assert_eq!(parse("poweroff"), Command::PowerOff);
        assert_eq!(parse("stop"), Command::Unknown);
        assert_eq!(parse("halt"), Command::Unknown);
    }

    #[test]
    fn a_vm_by_id_or_name() {
        let names = ["alpha", "beta", "7"];
        assert_eq!(find_vm("1", names.into_iter()), Some(1));
        assert_eq!(find_vm("beta", names.into_iter()), Some(1));
        assert_eq!(find_vm("3", names.into_iter()), None);
        assert_eq!(find_vm("gamma", names.into_iter()), None);
        // A number is an id first, then a name.
        assert_eq!(find_vm("7", names.into_iter()), Some(2));
        assert_eq!(find_vm("2", names.into_iter()), Some(2));
    }
}
