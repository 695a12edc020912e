//! Launching QEMU: the machine rhyve runs on, a guest booted straight (for comparison), and a
//! console capture with timestamps, a timeout and early stop on a marker.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::{Error, IoContext, Result};
use crate::sys;

const QEMU: &str = "qemu-system-aarch64";
/// Memory QEMU gives the machine beyond the guest's: the hypervisor and the bundle.
pub const HYPERVISOR_MEM_MIB: u64 = 256;
/// Memory the machine needs beyond that for each VM that boots a firmware: its flash banks,
/// which rhyve backs with the machine's RAM.
pub const FLASH_MEM_MIB: u64 = (abi::layout::FLASH_BANK_SIZE * abi::layout::FLASH_BANKS) >> 20;
/// The fewest CPUs a machine for rhyve gets (one VM's vCPUs then each have a CPU of their own).
const MIN_HOST_CPUS: u32 = 4;

/// The QEMU binary, installed with apt if missing and allowed.
pub fn binary() -> Result<PathBuf> {
    if let Some(p) = sys::find_program(QEMU) {
        return Ok(p);
    }
    if sys::can_apt_install() {
        println!("xtask: {QEMU} not found; installing qemu-system-arm");
        sys::apt_install(&["qemu-system-arm"])?;
        return sys::find_program(QEMU).ok_or_else(|| {
            Error::Failed(format!(
                "installed qemu-system-arm but {QEMU} is still not on PATH"
            ))
        });
    }
    Err(Error::Failed(format!(
        "{QEMU} not found: install QEMU (Debian/Ubuntu, as root: `apt-get install qemu-system-arm`; \
         elsewhere your distribution's qemu-system-aarch64 package)"
    )))
}

/// A board QEMU models, instead of QEMU virt: the machine rhyve runs on in a board scenario.
#[derive(Debug, Clone)]
pub struct Board {
    /// The QEMU binary that has the board (the system's, or one xtask fetched).
    pub qemu: PathBuf,
    /// That QEMU's data directory (`-L`: ROMs, keymaps), when it is not the system's.
    pub data_dir: Option<PathBuf>,
    /// `-M`: the board and its options.
    pub machine: String,
    /// `-dtb`: the board's own device tree, for a board whose QEMU model makes none.
    pub dtb: Option<PathBuf>,
    /// `-smp`: some boards take only their own CPU count.
    pub smp: u32,
    /// The serial port the tree's `stdout-path` names (0 is the first `-serial`); the ports
    /// before it get `-serial null`.
    pub console_port: u32,
    /// Options for the hypervisor's own command line (`-append`) this board's QEMU needs.
    pub hypervisor_args: Option<String>,
}

/// A QEMU virt machine to boot, or a [`Board`].
#[derive(Debug, Clone)]
pub struct Machine {
    /// EL2 available (`virtualization=on`): the machine rhyve runs on.
    pub virtualization: bool,
    /// Number of CPUs.
    pub smp: u32,
    /// RAM in MiB.
    pub mem_mib: u64,
    /// What `-kernel` loads.
    pub kernel: Option<PathBuf>,
    /// What `-bios` loads: firmware run from the first flash bank (a guest booted straight,
    /// or the firmware that boots rhyve).
    pub bios: Option<PathBuf>,
    /// QEMU hands the firmware ACPI tables (`acpi=off` when false). With them, EDK2 offers
    /// the OS ACPI and no device tree.
    pub acpi: bool,
    /// A captured run lets the guest reset the machine (QEMU restarts it, its flash kept),
    /// instead of ending QEMU at the reset (`-no-reboot`), which stops a crashing guest.
    pub reboot: bool,
    /// What `-initrd` loads.
    pub initrd: Option<PathBuf>,
    /// `-append`, for a kernel booted straight.
    pub append: Option<String>,
    /// More QEMU arguments: the machine's own devices (disks, network cards).
    pub extra: Vec<OsString>,
    /// A board instead of QEMU virt: its QEMU, machine, tree, CPUs and console port.
    pub board: Option<Board>,
}

impl Machine {
    /// The machine that runs rhyve with `bundle` for guests that need `cpus` CPUs and
    /// `guest_mem_mib` of RAM in all.
    pub fn rhyve(image: &Path, bundle: &Path, cpus: u32, guest_mem_mib: u64) -> Self {
        Self {
            virtualization: true,
            smp: cpus.max(MIN_HOST_CPUS),
            mem_mib: guest_mem_mib + HYPERVISOR_MEM_MIB,
            kernel: Some(image.to_path_buf()),
            bios: None,
            acpi: true,
            initrd: Some(bundle.to_path_buf()),
            append: None,
            reboot: false,
            extra: Vec::new(),
            board: None,
        }
    }

    /// The machine that runs rhyve with `bundle` on `smp` CPUs and `mem_mib` of RAM.
    pub fn rhyve_sized(image: &Path, bundle: &Path, smp: u32, mem_mib: u64) -> Self {
        Self {
            virtualization: true,
            smp,
            mem_mib,
            kernel: Some(image.to_path_buf()),
            bios: None,
            acpi: true,
            initrd: Some(bundle.to_path_buf()),
            append: None,
            reboot: false,
            extra: Vec::new(),
            board: None,
        }
    }

    /// A guest booted straight by QEMU, no hypervisor.
    pub fn straight(
        kernel: &Path,
        initrd: Option<&Path>,
        cmdline: &str,
        smp: u32,
        mem_mib: u64,
    ) -> Self {
        Self {
            virtualization: false,
            smp,
            mem_mib,
            kernel: Some(kernel.to_path_buf()),
            bios: None,
            acpi: true,
            initrd: initrd.map(Path::to_path_buf),
            append: Some(cmdline.to_string()),
            reboot: false,
            extra: Vec::new(),
            board: None,
        }
    }

    /// A guest's own firmware booted straight by QEMU (`-bios`), no hypervisor: it runs from
    /// flash at address 0 and boots what it finds on the machine's disk.
    pub fn straight_firmware(firmware: &Path, smp: u32, mem_mib: u64) -> Self {
        Self {
            virtualization: false,
            smp,
            mem_mib,
            kernel: None,
            bios: Some(firmware.to_path_buf()),
            acpi: true,
            initrd: None,
            append: None,
            reboot: false,
            extra: Vec::new(),
            board: None,
        }
    }

    /// QEMU's arguments, without the console options.
    ///
    /// `-nodefaults` first: the machine has exactly the devices named here and in `extra`. Without
    /// it QEMU adds a PCI network card to a machine that names none, and that card needs an
    /// option ROM (`efi-virtio.rom`) that a QEMU installed without recommends does not have.
    pub fn args(&self) -> Vec<OsString> {
        if let Some(b) = &self.board {
            return self.board_args(b);
        }
        let mut machine = if self.virtualization {
            "virt,virtualization=on,gic-version=3"
        } else {
            "virt,gic-version=3"
        }
        .to_string();
        if !self.acpi {
            machine.push_str(",acpi=off");
        }
        let mut a: Vec<OsString> = vec![
            "-nodefaults".into(),
            "-M".into(),
            machine.into(),
            // pauth-impdef: QARMA pointer authentication makes TCG several times slower.
            "-cpu".into(),
            "max,pauth-impdef=on".into(),
            "-smp".into(),
            self.smp.to_string().into(),
            "-m".into(),
            format!("{}M", self.mem_mib).into(),
        ];
        self.push_boot_args(&mut a);
        a
    }

    /// A board's arguments: its machine and CPUs as they are (no `-cpu`: the board's own),
    /// its tree, and what it boots.
    fn board_args(&self, b: &Board) -> Vec<OsString> {
        let mut a: Vec<OsString> = vec!["-nodefaults".into()];
        if let Some(d) = &b.data_dir {
            a.extend(["-L".into(), d.clone().into()]);
        }
        a.extend([
            "-M".into(),
            b.machine.clone().into(),
            "-smp".into(),
            b.smp.to_string().into(),
            "-m".into(),
            format!("{}M", self.mem_mib).into(),
        ]);
        if let Some(d) = &b.dtb {
            a.extend(["-dtb".into(), d.clone().into()]);
        }
        self.push_boot_args(&mut a);
        a
    }

    /// `-kernel`, `-bios`, `-initrd`, `-append` and the extra arguments.
    fn push_boot_args(&self, a: &mut Vec<OsString>) {
        if let Some(k) = &self.kernel {
            a.extend(["-kernel".into(), k.clone().into()]);
        }
        if let Some(b) = &self.bios {
            a.extend(["-bios".into(), b.clone().into()]);
        }
        if let Some(i) = &self.initrd {
            a.extend(["-initrd".into(), i.clone().into()]);
        }
        if let Some(c) = &self.append {
            a.extend(["-append".into(), c.into()]);
        }
        a.extend(self.extra.iter().cloned());
    }

    /// `-serial` for the console on `chardev`: on a board, `-serial null` for each port
    /// before the console's.
    fn serial_args(&self, chardev: &str) -> Vec<String> {
        let before = self.board.as_ref().map_or(0, |b| b.console_port);
        let mut a = Vec::new();
        for _ in 0..before {
            a.extend(["-serial".to_string(), "null".to_string()]);
        }
        a.extend(["-serial".to_string(), chardev.to_string()]);
        a
    }

    /// The QEMU binary that runs this machine: the board's, else the system's.
    pub fn qemu(&self) -> Result<PathBuf> {
        match &self.board {
            Some(b) => Ok(b.qemu.clone()),
            None => binary(),
        }
    }

    /// The command for an interactive run: the console on the terminal, multiplexed with QEMU's
    /// monitor (Ctrl-A c) as `-nographic` does for a machine with default devices.
    pub fn interactive_command(&self, qemu: &Path, gdb: bool) -> Command {
        let mut c = Command::new(qemu);
        c.args(self.args())
            .arg("-nographic")
            .args(self.serial_args("mon:stdio"));
        if gdb {
            c.args(["-s", "-S"]);
        }
        c
    }

    /// The command for a captured run: the serial console on stdout, no monitor, no display,
    /// and a guest reset ends QEMU instead of looping a crashing guest until the timeout.
    fn captured_command(&self, qemu: &Path) -> Command {
        let mut c = Command::new(qemu);
        c.args(self.args())
            .args(["-display", "none", "-monitor", "none"])
            .args(self.serial_args("stdio"))
            .args((!self.reboot).then_some("-no-reboot"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }
}

/// One console line and when it arrived (since QEMU was spawned).
#[derive(Debug, Clone)]
pub struct Line {
    /// Time since spawn.
    pub at: Duration,
    /// The text, without the line ending; QEMU's own stderr lines start with `qemu: `.
    pub text: String,
}

/// How a captured run ended.
#[derive(Debug, Clone)]
pub enum End {
    /// QEMU exited by itself.
    Exited(ExitStatus),
    /// Killed at the timeout.
    TimedOut(Duration),
    /// Killed after a stop marker appeared (and its grace period passed).
    Stopped(String),
}

/// Text typed on the guest's console once a marker line appears: inputs are sent in order,
/// each after its marker (seen after the previous input was sent) and a short delay.
#[derive(Debug, Clone, Copy)]
pub struct Input {
    /// Text that, contained in a console line, makes the input due.
    pub after: &'static str,
    /// How long to wait after the marker (the guest's shell may not be reading yet).
    pub delay: Duration,
    /// What to type.
    pub send: &'static str,
}

/// A marker that ends a captured run, `grace` after it appears (to catch what follows it).
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    /// Text that, contained in a console line, ends the run.
    pub marker: &'static str,
    /// How long to keep capturing after it.
    pub grace: Duration,
}

/// The console of a finished run.
#[derive(Debug, Clone)]
pub struct Capture {
    /// Every line, in order.
    pub lines: Vec<Line>,
    /// How it ended.
    pub end: End,
    /// The log file the lines were written to.
    pub log: PathBuf,
}

impl Capture {
    /// A console of these lines, as QEMU exiting 0 would leave it (for checks' unit tests).
    #[cfg(test)]
    pub fn from_text(text: &str) -> Self {
        use std::os::unix::process::ExitStatusExt;
        Self {
            lines: text
                .lines()
                .map(|t| Line {
                    at: Duration::ZERO,
                    text: t.to_string(),
                })
                .collect(),
            end: End::Exited(ExitStatus::from_raw(0)),
            log: "test.log".into(),
        }
    }

    /// The first line containing `marker`.
    pub fn find(&self, marker: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.text.contains(marker))
    }

    /// The last `n` lines, for a failure report.
    pub fn tail(&self, n: usize) -> &[Line] {
        &self.lines[self.lines.len().saturating_sub(n)..]
    }

    /// Whether QEMU exited with status 0 by itself.
    pub fn exited_cleanly(&self) -> bool {
        matches!(&self.end, End::Exited(s) if s.success())
    }
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited(s) => write!(f, "QEMU exited ({s})"),
            Self::TimedOut(t) => write!(f, "timed out after {} s (QEMU killed)", t.as_secs()),
            Self::Stopped(m) => write!(f, "stopped after `{m}` appeared (QEMU killed)"),
        }
    }
}

/// Forwards each line of `r` (prefixed) with its arrival time.
fn pump(r: impl Read + Send + 'static, prefix: &'static str, tx: mpsc::Sender<(Instant, String)>) {
    std::thread::spawn(move || {
        let mut r = BufReader::new(r);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match r.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    let text = text.trim_end_matches(['\n', '\r']).replace('\r', "");
                    if tx
                        .send((Instant::now(), format!("{prefix}{text}")))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
}

/// Kills `child` (it is ours) and reaps it.
fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Boots `machine` with its console captured to `log` (one `[seconds] line` per line), until
/// QEMU exits, `timeout` passes, or a `stops` marker appears.
pub fn run_captured(
    machine: &Machine,
    log: &Path,
    timeout: Duration,
    stops: &[Stop],
    inputs: &[Input],
) -> Result<Capture> {
    let qemu = machine.qemu()?;
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).ctx(|| format!("creating {}", dir.display()))?;
    }
    let mut log_file = File::create(log).ctx(|| format!("creating {}", log.display()))?;
    let mut cmd = machine.captured_command(&qemu);
    writeln!(log_file, "# {}", sys::render(&cmd)).ctx(|| format!("writing {}", log.display()))?;
    let start = Instant::now();
    let mut child = cmd.spawn().map_err(|source| Error::Spawn {
        program: qemu.display().to_string(),
        source,
    })?;
    let mut stdin = child.stdin.take();
    let mut next_input = 0;
    let mut input_at: Option<Instant> = None;
    let (tx, rx) = mpsc::channel();
    pump(child.stdout.take().expect("piped"), "", tx.clone());
    pump(child.stderr.take().expect("piped"), "qemu: ", tx);

    let mut lines = Vec::new();
    let mut stop_at: Option<(Instant, &'static str)> = None;
    let mut exited: Option<ExitStatus> = None;
    let end = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok((t, text)) => {
                let at = t - start;
                let _ = writeln!(log_file, "[{:9.3}] {text}", at.as_secs_f64());
                if let Some(i) = inputs.get(next_input) {
                    if input_at.is_none() && text.contains(i.after) {
                        input_at = Some(t + i.delay);
                    }
                }
                if stop_at.is_none() {
                    if let Some(s) = stops.iter().find(|s| text.contains(s.marker)) {
                        stop_at = Some((t + s.grace, s.marker));
                    }
                }
                lines.push(Line { at, text });
            }
            // Both pipes closed: QEMU is gone (or closed them); reap it.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                if exited.is_none() {
                    exited = Some(child.wait().ctx(|| "waiting for QEMU".into())?);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if exited.is_none() {
            exited = child.try_wait().ctx(|| "waiting for QEMU".into())?;
        }
        if let Some(status) = exited {
            // Collect what is still in the pipes (bounded: a stuck pipe must not hang us).
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Ok((t, text)) =
                rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                let at = t - start;
                let _ = writeln!(log_file, "[{:9.3}] {text}", at.as_secs_f64());
                lines.push(Line { at, text });
            }
            break End::Exited(status);
        }
        let now = Instant::now();
        if let (Some(due), Some(i)) = (input_at, inputs.get(next_input)) {
            if now >= due {
                if let Some(s) = stdin.as_mut() {
                    let _ = s.write_all(i.send.as_bytes()).and_then(|_| s.flush());
                    let _ = writeln!(log_file, "# typed {:?}", i.send);
                }
                next_input += 1;
                input_at = None;
            }
        }
        if let Some((at, marker)) = stop_at {
            if now >= at {
                kill(&mut child);
                break End::Stopped(marker.to_string());
            }
        }
        if now - start >= timeout {
            kill(&mut child);
            break End::TimedOut(timeout);
        }
    };
    let _ = writeln!(log_file, "# {end}");
    Ok(Capture {
        lines,
        end,
        log: log.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(args: &[OsString], words: &[&str]) -> bool {
        args.windows(words.len())
            .any(|w| w.iter().zip(words).all(|(a, b)| a == b))
    }

    #[test]
    fn every_machine_has_only_the_devices_it_names() {
        let image = Path::new("rhyve.bin");
        let bundle = Path::new("bundle.bin");
        for m in [
            Machine::rhyve(image, bundle, 2, 512),
            Machine::rhyve_sized(image, bundle, 4, 768),
            Machine::straight(image, None, "console=ttyAMA0", 2, 512),
            Machine::straight_firmware(Path::new("QEMU_EFI.fd"), 1, 512),
        ] {
            let args = m.args();
            assert!(has(&args, &["-nodefaults"]), "{args:?}");
            let qemu = Path::new(QEMU);
            for cmd in [m.interactive_command(qemu, false), m.captured_command(qemu)] {
                let args: Vec<OsString> = cmd.get_args().map(Into::into).collect();
                // -nodefaults drops the default serial port: each command names its own.
                assert!(
                    has(&args, &["-serial", "mon:stdio"]) || has(&args, &["-serial", "stdio"]),
                    "{args:?}"
                );
            }
        }
    }

    #[test]
    fn firmware_boots_from_flash_and_may_reset_the_machine() {
        let mut m = Machine::straight_firmware(Path::new("u-boot.bin"), 1, 512);
        let args = m.args();
        assert!(has(&args, &["-M", "virt,gic-version=3"]), "{args:?}");
        assert!(has(&args, &["-bios", "u-boot.bin"]), "{args:?}");
        for absent in ["-kernel", "-initrd", "-append"] {
            assert!(!has(&args, &[absent]), "{args:?}");
        }
        let qemu = Path::new(QEMU);
        let captured = |m: &Machine| -> Vec<OsString> {
            m.captured_command(qemu)
                .get_args()
                .map(Into::into)
                .collect()
        };
        assert!(has(&captured(&m), &["-no-reboot"]));
        m.reboot = true;
        assert!(!has(&captured(&m), &["-no-reboot"]));
        let rhyve = Machine::rhyve(Path::new("rhyve.bin"), Path::new("b.bin"), 1, 512);
        assert!(has(&rhyve.args(), &["-kernel", "rhyve.bin"]));
        assert!(!has(&rhyve.args(), &["-bios"]));
    }
}
