//! `cargo xtask`: build, run, test and benchmark rhyve. The one entry point for people and CI.
//!
//! Only std and the workspace's `vmboot` and `abi` (for the boot bundle and the VM
//! descriptions): the system's apt, dpkg-deb and gzip do the fetching and unpacking; QEMU does
//! the rest.

mod args;
mod bench;
mod boot;
mod config;
mod cpio;
mod devices;
mod dtcorpus;
mod error;
mod firmware;
mod fuzz;
mod guest;
mod hostfw;
mod image;
mod interrupts;
mod iobench;
mod lint;
mod modcycles;
mod partition;
mod pe;
mod qemu;
mod qemu10;
mod scenarios;
mod sink;
mod symbols;
mod sys;
mod toolchain;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use args::Args;
use boot::{GuestBoot, Host};
use error::{Error, Result};

/// The head of `cargo xtask help`.
const USAGE_HEAD: &str = "\
usage: cargo xtask <command> [options]

commands (`cargo xtask COMMAND --help` for one):";

/// Each command's usage: `cargo xtask help` prints them all, `cargo xtask CMD --help` its own.
const COMMANDS: &[(&str, &str)] = &[
    (
        "build",
        "  build          build the EL2 image (target/aarch64-unknown-none-softfloat/release/rhyve)
                 and convert it to the flat target/rhyve.bin QEMU boots",
    ),
    (
        "fetch-guest",
        "  fetch-guest    fetch Debian's arm64 kernel and busybox into build/guest/ (Image,
                 initramfs.cpio); run/test/bench do this themselves",
    ),
    (
        "fetch-firmware",
        "  fetch-firmware fetch Debian's U-Boot, EDK2 (UEFI) and GRUB into build/firmware/ and build the
                 disks that boot the guest of fetch-guest to its shell with them
                 (build/firmware/uboot.img, uefi.img); prints their paths, for
                 `run --firmware PATH --disk IMG`; test makes its own",
    ),
    (
        "run",
        "  run            boot a guest under rhyve in QEMU, console on this terminal (Ctrl-A x quits)
      --config FILE    the VMs of a TOML file (see xtask/README.md; e.g.
                       examples/two-linux.toml) instead of the one guest below; its
                       files are read relative to FILE's directory
      --firmware PATH  boot this firmware (U-Boot's u-boot.bin, EDK2's QEMU_EFI.fd) from the
                       guest's flash instead of a kernel; it boots what it finds on --disk.
                       Not with --kernel, --initrd or --cmdline. The guest has a UART, an RTC
                       and the disk (no network card); the machine gets 128 MiB more RAM for
                       its flash
      --kernel PATH    guest kernel (default: build/guest/Image)
      --initrd PATH    guest initrd, or `none` (default: build/guest/initramfs.cpio)
      --cmdline STR    (default: console=ttyAMA0 earlycon=pl011,0x9000000)
      --vcpus N        (default: 2)
      --mem SIZE       guest RAM: 512M, 1G, 262144K; plain numbers are MiB (default: 512M)
      --gdb            start halted with a gdb stub on :1234, and say how to attach
      --disk PATH[,ro] the machine's disk, the guest's /dev/vda, raw or qcow2 (default: with --config,
                       the image the VMs' disk.file names, made if missing; else a scratch
                       build/disk.img, made if missing); `,ro`: the guest cannot write it
                 the guest also gets virtio-net (QEMU user networking: eth0 10.0.2.15, the
                 host 10.0.2.2), virtio-rng (/dev/hwrng) and virtio-console (hvc0, vport0p1)",
    ),
    (
        "test",
        "  test           the whole test suite: lints first (cargo fmt --check; cargo clippy -D warnings
                 on the host crates and, for aarch64-unknown-none-softfloat, on the EL2 image,
                 the VMM partition and the test guests; a finding stops the suite there), then
                 host unit tests, then dt-corpus (the hypervisor's device-tree discovery on the
                 board trees of Debian's current arm64 kernel package, checked against dtc's
                 reading; installs device-tree-compiler), then the image's symbols (image-symbols: no device model
                 in the EL2 core), then Linux guests under rhyve (scenarios linux-smp-1/2/4,
                 hostile-*, board-* on QEMU's Versal and i.MX8MP boards, the latter with QEMU 10
                 from bookworm-backports in build/qemu10/; console logs in build/logs/); ends with `N passed, N failed` and
                 fails if any failed
      --quick          lints and host unit tests only (no fuzzing, no image build, no guest
                       download, no QEMU)
    developer options (checking the checks without a working hypervisor):
      --straight       boot the scenarios' guests straight under QEMU, without rhyve
      --only NAME      run only the scenarios whose name contains NAME (dt-corpus runs only
                       if its name contains NAME too)
      --vcpus-override N  boot every guest with N vCPUs whatever the scenario expects
                       (e.g. `--straight --only smp-4 --vcpus-override 2` must fail)
      --timeout SECS   a scenario's time limit instead of its own (600 s for Linux)
      --skip-lint      skip the lints
      --skip-unit      skip the host unit tests and dt-corpus
      --skip-fuzz      skip the short fuzz runs (fuzz-seeds, fuzz-<target>) after the unit tests",
    ),
    (
        "fuzz",
        "  fuzz           run each host fuzz target in fuzz/ (cargo-fuzz, installed if missing) and
                 print executions, exec/s and crashes per target; fails on any crash
      --seconds N      time per target (default: 600)
      --target NAME    only this target",
    ),
    (
        "bench",
        "  bench          boot time, QEMU spawn to the guest's first init line, straight vs under rhyve
      --runs N         boots of each (default: 5)
      --straight-only  (developer) only the straight series, no hypervisor image",
    ),
    (
        "help",
        "  help [COMMAND] this text, or COMMAND's usage (as `cargo xtask COMMAND --help`)",
    ),
];

/// The default guest command line of `run`.
const DEFAULT_CMDLINE: &str = "console=ttyAMA0 earlycon=pl011,0x9000000";

fn main() -> ExitCode {
    match dispatch(Args::new(std::env::args().skip(1))) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The usage of `cmd`, if it is a command.
fn command_usage(cmd: &str) -> Option<&'static str> {
    COMMANDS.iter().find(|(c, _)| *c == cmd).map(|(_, u)| *u)
}

/// `cargo xtask help`: every command's usage.
fn usage() -> String {
    let mut u = String::from(USAGE_HEAD);
    for (_, text) in COMMANDS {
        u.push('\n');
        u.push_str(text);
    }
    u
}

fn dispatch(mut args: Args) -> Result<ExitCode> {
    let cmd = args.command();
    // `COMMAND --help` (or -h) anywhere among its options prints its usage and does nothing else.
    if let Some(usage) = cmd.as_deref().and_then(command_usage) {
        if args.flag("--help") || args.flag("-h") {
            println!(
                "usage: cargo xtask {} [options]\n\n{usage}",
                cmd.as_deref().unwrap_or_default()
            );
            return Ok(ExitCode::SUCCESS);
        }
    }
    match cmd.as_deref() {
        Some("build") => {
            args.finish()?;
            toolchain::build_image()?;
        }
        Some("fetch-guest") => {
            args.finish()?;
            guest::fetch()?;
        }
        Some("fetch-firmware") => {
            args.finish()?;
            fetch_firmware()?;
        }
        Some("run") => run(args)?,
        Some("test") => return test(args),
        Some("fuzz") => {
            let seconds = args.number("--seconds")?.unwrap_or(fuzz::DEFAULT_SECONDS);
            let target = args.value("--target")?;
            args.finish()?;
            if !fuzz::fuzz(seconds, target.as_deref())? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Some("bench") => {
            let runs = args.number("--runs")?.unwrap_or(5);
            let straight_only = args.flag("--straight-only");
            args.finish()?;
            if runs == 0 {
                return Err(Error::Usage("--runs must be at least 1".into()));
            }
            let image = if straight_only {
                None
            } else {
                Some(toolchain::build_image()?)
            };
            let guest = guest::fetch()?;
            bench::bench(runs, image, &guest)?;
        }
        Some("help" | "--help" | "-h") => match args.command() {
            None => println!("{}", usage()),
            Some(c) => match command_usage(&c) {
                Some(u) => println!("usage: cargo xtask {c} [options]\n\n{u}"),
                None => return Err(Error::Usage(format!("unknown command `{c}`"))),
            },
        },
        None => return Err(Error::Usage("no command given".into())),
        Some(other) => return Err(Error::Usage(format!("unknown command `{other}`"))),
    }
    Ok(ExitCode::SUCCESS)
}

/// `cargo xtask run`: builds, fetches what the defaults need, and replaces itself with QEMU.
fn run(mut args: Args) -> Result<()> {
    let config = args.value("--config")?.map(PathBuf::from);
    let gdb = args.flag("--gdb");
    let disk = args
        .value("--disk")?
        .map(|d| devices::Disk::parse(&d))
        .transpose()?;
    let firmware = args.value("--firmware")?.map(PathBuf::from);
    let bundle = sys::build_dir().join("bundle.bin");
    let (mut machine, disk) = match (config, firmware) {
        (Some(_), Some(_)) => {
            return Err(Error::Usage(
                "--firmware and --config: a VM of the file names its own firmware (firmware = \"path\")"
                    .into(),
            ))
        }
        (None, Some(firmware)) => {
            let boot = firmware_guest(args, firmware)?;
            let host = Host::Rhyve {
                image: toolchain::build_image()?,
            };
            let mut machine = boot.machine(&host, &bundle)?;
            let disk = match disk {
                Some(d) => d,
                None => devices::Disk::scratch()?,
            };
            // The VM has no network card, so the machine gets none either.
            machine.extra.extend(disk.qemu_args());
            return exec_qemu(&machine, gdb);
        }
        (Some(config), None) => {
            args.finish().map_err(|e| match e {
                Error::Usage(m) => Error::Usage(format!(
                    "{m}: with --config, the file describes the VMs (only --disk and --gdb go with it)"
                )),
                e => e,
            })?;
            // The description first: its mistakes show before the image is built.
            let packed = config::write_bundle(&config, &bundle)?;
            let dir = config.parent().unwrap_or(Path::new("."));
            let choice = config::machine_disk(&packed.vms, dir, disk)?;
            for note in &choice.notes {
                println!("xtask: note: {note}");
            }
            let image = toolchain::build_image()?;
            let needs = packed.needs;
            (
                qemu::Machine::rhyve(&image, &bundle, needs.cpus, needs.guest_mem_mib),
                choice.disk,
            )
        }
        (None, None) => (
            single_guest(args)?.machine(
                &Host::Rhyve {
                    image: toolchain::build_image()?,
                },
                &bundle,
            )?,
            disk.map_or(config::MachineDisk::Scratch, config::MachineDisk::Given),
        ),
    };
    // The machine's own disk and network card, which rhyve shares out to the VMs.
    let disk = match disk {
        config::MachineDisk::Given(d) => d,
        config::MachineDisk::Named { path, min_len } => devices::Disk::named(&path, min_len)?,
        config::MachineDisk::Scratch => devices::Disk::scratch()?,
    };
    machine.extra.extend(disk.qemu_args());
    machine
        .extra
        .extend(devices::net_args().into_iter().map(Into::into));
    exec_qemu(&machine, gdb)
}

/// `cargo xtask fetch-firmware`: the firmware and the disks of the default guest.
fn fetch_firmware() -> Result<()> {
    let guest = guest::fetch()?;
    let fw = firmware::fetch()?;
    println!("xtask: U-Boot: {}", fw.uboot.display());
    println!("xtask: EDK2:   {}", fw.edk2.display());
    // The disks whose guest is the interactive shell; the tests' make themselves.
    for (kind, loader) in [
        (firmware::DiskKind::UbootShell, "U-Boot: extlinux.conf"),
        (firmware::DiskKind::UefiShell, "UEFI: GRUB"),
    ] {
        println!(
            "xtask: disk:   {} ({loader})",
            firmware::disk(kind, &guest, &fw)?.display(),
        );
    }
    Ok(())
}

/// The firmware guest of `run --firmware`: `--vcpus` and `--mem` as for a kernel; a kernel's
/// options are refused, as the firmware finds its OS on the disk.
fn firmware_guest(mut args: Args, firmware: PathBuf) -> Result<boot::FirmwareBoot> {
    for opt in ["--kernel", "--initrd", "--cmdline"] {
        if args.value(opt)?.is_some() {
            return Err(Error::Usage(format!(
                "--firmware and {opt}: the firmware loads the OS (and its command line) from the disk"
            )));
        }
    }
    let (vcpus, mem_mib) = vcpus_and_mem(&mut args)?;
    args.finish()?;
    if !firmware.is_file() {
        return Err(Error::Usage(format!(
            "--firmware {}: no such file",
            firmware.display()
        )));
    }
    Ok(boot::FirmwareBoot {
        firmware,
        vcpus,
        mem_mib,
        reboots: false,
        vars: None,
    })
}

/// `run`'s `--vcpus` (at least 1; default 2) and `--mem` in MiB (default 512).
fn vcpus_and_mem(args: &mut Args) -> Result<(u32, u64)> {
    let vcpus = args.number("--vcpus")?.unwrap_or(2);
    if vcpus == 0 {
        return Err(Error::Usage("--vcpus must be at least 1".into()));
    }
    let mem_mib = args
        .value("--mem")?
        .map(|m| args::parse_mem_mib(&m))
        .transpose()?
        .unwrap_or(512);
    Ok((vcpus, mem_mib))
}

/// The one guest `run`'s options describe, with the fetched guest as the default.
fn single_guest(mut args: Args) -> Result<GuestBoot> {
    let kernel = args.value("--kernel")?.map(PathBuf::from);
    let initrd = args.value("--initrd")?;
    let cmdline = args
        .value("--cmdline")?
        .unwrap_or_else(|| DEFAULT_CMDLINE.into());
    let (vcpus, mem_mib) = vcpus_and_mem(&mut args)?;
    args.finish()?;

    let guest = if kernel.is_none() || initrd.is_none() {
        Some(guest::fetch()?)
    } else {
        None
    };
    let default = |f: fn(&guest::GuestFiles) -> PathBuf| {
        f(guest.as_ref().expect("fetched when a default is used"))
    };
    Ok(GuestBoot {
        kernel: kernel.unwrap_or_else(|| default(|g| g.kernel.clone())),
        initrd: match initrd.as_deref() {
            Some("none") => None,
            Some(p) => Some(PathBuf::from(p)),
            None => Some(default(|g| g.initrd.clone())),
        },
        cmdline,
        vcpus,
        mem_mib,
    })
}

/// Replaces this process with QEMU running `machine`, the console on the terminal.
fn exec_qemu(machine: &qemu::Machine, gdb: bool) -> Result<()> {
    let qemu = qemu::binary()?;
    let mut cmd = machine.interactive_command(&qemu, gdb);
    if gdb {
        println!("xtask: QEMU waits for gdb on :1234; attach with:");
        println!(
            "  gdb-multiarch {} -ex 'target remote :1234'",
            toolchain::elf_path()
                .strip_prefix(sys::repo_root())
                .unwrap_or(&toolchain::elf_path())
                .display()
        );
    }
    println!("xtask: {}", sys::render(&cmd));
    println!("xtask: console follows; Ctrl-A x quits QEMU");
    let e = cmd.exec();
    Err(Error::Spawn {
        program: cmd.get_program().to_string_lossy().into_owned(),
        source: e,
    })
}

/// `cargo xtask test`: prints `N passed, N failed` last, and fails if any failed.
fn test(mut args: Args) -> Result<ExitCode> {
    let quick = args.flag("--quick");
    let straight = args.flag("--straight");
    let skip_lint = args.flag("--skip-lint");
    let skip_unit = args.flag("--skip-unit");
    let skip_fuzz = args.flag("--skip-fuzz");
    let only = args.value("--only")?;
    let vcpus_override = args.number("--vcpus-override")?;
    let timeout_override = args
        .number("--timeout")?
        .map(|s| Duration::from_secs(s.into()));
    args.finish()?;

    let mut outcomes = Vec::new();
    if !skip_lint {
        lint::test_step(&mut |o, t| record(&mut outcomes, o, t));
        if outcomes.iter().any(|o| !o.failures.is_empty()) {
            println!(
                "xtask: the lints found something: fix it first; the rest of the suite did not run"
            );
            return Ok(summary(&outcomes));
        }
    }
    if !skip_unit {
        let t = Instant::now();
        record(&mut outcomes, unit_tests(), t);
    }
    // The board trees are a 60 MB download: not in --quick, as the guest is not.
    let dt_corpus =
        !quick && !skip_unit && only.as_deref().is_none_or(|o| dtcorpus::NAME.contains(o));
    if dt_corpus {
        let t = Instant::now();
        record(&mut outcomes, dtcorpus::test_step(), t);
    }
    if !quick && !skip_fuzz {
        fuzz::test_step(fuzz::TEST_SECONDS, &mut |o, t| record(&mut outcomes, o, t));
    }
    if !quick {
        let selected: Vec<_> = scenarios::all()
            .into_iter()
            .filter(|s| only.as_deref().is_none_or(|o| s.name().contains(o)))
            .collect();
        if selected.is_empty() && dt_corpus {
            return Ok(summary(&outcomes));
        }
        if selected.is_empty() {
            return Err(Error::Usage(format!(
                "no scenario matches `{}`",
                only.unwrap_or_default()
            )));
        }
        let prepared = (|| -> Result<scenarios::Context> {
            let host = if straight {
                Host::Straight
            } else {
                let image = toolchain::build_image()?;
                // The image just built keeps the privilege line: no device model in the core.
                let t = Instant::now();
                record(&mut outcomes, symbols::test_step(&toolchain::elf_path()), t);
                // ... and is both a kernel and an EFI application.
                let t = Instant::now();
                record(&mut outcomes, pe::test_step(&image), t);
                Host::Rhyve { image }
            };
            toolchain::build_test_guests()?;
            Ok(scenarios::Context {
                host,
                guest: guest::fetch()?,
                vcpus_override,
                timeout_override,
            })
        })();
        match prepared {
            Err(e) => {
                for s in &selected {
                    let o = scenarios::Outcome::not_run(s.name(), format!("not run: {e}"));
                    record(&mut outcomes, o, Instant::now());
                }
            }
            Ok(ctx) => {
                if straight {
                    println!("xtask: --straight: guests boot without rhyve (checking the checks)");
                }
                for s in &selected {
                    println!("xtask: scenario {} ...", s.name());
                    let t = Instant::now();
                    record(&mut outcomes, scenarios::run(s.as_ref(), &ctx), t);
                }
            }
        }
    }
    Ok(summary(&outcomes))
}

/// Prints the failed outcomes' names and the `N passed, N failed` line; failure if any failed.
fn summary(outcomes: &[scenarios::Outcome]) -> ExitCode {
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| !o.failures.is_empty())
        .map(|o| o.name.as_str())
        .collect();
    if !failed.is_empty() {
        println!("failed: {}", failed.join(", "));
    }
    println!(
        "{} passed, {} failed",
        outcomes.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Reports `o` at once (PASS, or FAIL with reasons and the console's tail) and keeps it.
fn record(outcomes: &mut Vec<scenarios::Outcome>, o: scenarios::Outcome, started: Instant) {
    if o.failures.is_empty() {
        println!("PASS {} ({:.1} s)", o.name, started.elapsed().as_secs_f64());
    } else {
        o.report();
    }
    outcomes.push(o);
}

/// `cargo test --workspace`, with the cargo that runs us.
fn unit_tests() -> scenarios::Outcome {
    let name = "host-unit-tests".to_string();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    println!("xtask: cargo test --workspace");
    let mut cmd = Command::new(cargo);
    cmd.args(["test", "--workspace"])
        .current_dir(sys::repo_root());
    match sys::run(&mut cmd) {
        Ok(()) => scenarios::Outcome {
            name,
            failures: vec![],
            console: None,
        },
        Err(e) => scenarios::Outcome::not_run(name, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_answers_help_without_running() {
        for (name, text) in COMMANDS {
            assert!(text.trim_start().starts_with(name), "{name}: {text}");
            for flag in ["--help", "-h"] {
                let args = Args::new([name.to_string(), flag.to_string()]);
                assert!(dispatch(args).is_ok(), "{name} {flag}");
            }
        }
        assert!(dispatch(Args::new(["help".into(), "run".into()])).is_ok());
        assert!(dispatch(Args::new(["help".into(), "nonsense".into()])).is_err());
    }

    #[test]
    fn a_firmware_guest_takes_no_kernel_options() {
        let fw = std::env::temp_dir().join(format!("rhyve-xtask-run-fw-{}", std::process::id()));
        std::fs::write(&fw, b"firmware").unwrap();
        let args = |extra: &[&str]| Args::new(extra.iter().map(|s| s.to_string()));
        let boot = firmware_guest(args(&["--vcpus", "3", "--mem", "1G"]), fw.clone()).unwrap();
        assert_eq!((boot.vcpus, boot.mem_mib, boot.reboots), (3, 1024, false));
        for opt in ["--kernel", "--initrd", "--cmdline"] {
            let e = firmware_guest(args(&[opt, "x"]), fw.clone()).unwrap_err();
            assert!(e.to_string().contains(opt), "{e}");
        }
        assert!(firmware_guest(args(&[]), fw.with_extension("missing")).is_err());
        assert!(firmware_guest(args(&["--bogus"]), fw.clone()).is_err());
        std::fs::remove_file(&fw).unwrap();
        // With --config the file names each VM's firmware.
        let e = dispatch(args(&["run", "--config", "x.toml", "--firmware", "f"])).unwrap_err();
        assert!(e.to_string().contains("--firmware and --config"), "{e}");
    }
}
