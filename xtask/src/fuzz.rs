//! `cargo xtask fuzz` and the fuzz step of `cargo xtask test`: the libFuzzer targets in
//! `fuzz/` (their own cargo workspace) run with cargo-fuzz, each for a time, with a summary of
//! executions, speed and crashes per target.
//!
//! cargo-fuzz runs on the stable toolchain with `--sanitizer none`: the code under test is
//! safe Rust (the `vmm` crate forbids `unsafe`; the host-built parts of `hypervisor` have
//! none), so AddressSanitizer would find nothing a bounds check does not, and stable has no
//! `-Zsanitizer` anyway. `-a` keeps debug assertions and overflow checks on, and the fuzz
//! workspace's release profile does too. Every target asserts its invariants; a failed
//! assertion is a crash.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use crate::error::{Error, IoContext, Result};
use crate::scenarios::Outcome;
use crate::sys;

/// Flags of every cargo-fuzz build and run (see the module documentation).
const BUILD_FLAGS: [&str; 3] = ["-a", "--sanitizer", "none"];
/// A single input that runs longer than this is reported as a hang.
const INPUT_TIMEOUT_SECS: u32 = 10;

/// The fuzz workspace.
fn fuzz_dir() -> PathBuf {
    sys::repo_root().join("fuzz")
}

/// Where its builds go: beside the main workspace's, never mixed with them.
fn fuzz_target_dir() -> PathBuf {
    sys::target_dir().join("fuzz")
}

/// The targets: one `fuzz/fuzz_targets/<name>.rs` each, sorted. The virtio device models
/// have one each (`virtio_blk`, `virtio_console`, `virtio_net`, `virtio_rng`), sharing the
/// harness in `fuzz/src/virtio/`.
pub fn targets() -> Result<Vec<String>> {
    let dir = fuzz_dir().join("fuzz_targets");
    let mut names = Vec::new();
    for entry in fs::read_dir(&dir).ctx(|| format!("listing {}", dir.display()))? {
        let path = entry.ctx(|| format!("listing {}", dir.display()))?.path();
        if path.extension().is_some_and(|e| e == "rs") {
            if let Some(stem) = path.file_stem() {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// `cargo` as the one running us would be called, in the fuzz workspace with its own target
/// directory.
fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(fuzz_dir())
        .env("CARGO_TARGET_DIR", fuzz_target_dir())
        // cargo-fuzz sets its own instrumentation flags on top of these; nothing of the outer
        // build's may leak in.
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    cmd
}

/// Installs cargo-fuzz from crates.io if `cargo fuzz` is not there.
fn ensure_cargo_fuzz() -> Result<()> {
    if sys::probe(cargo().args(["fuzz", "--version"])).is_some() {
        return Ok(());
    }
    println!("xtask: cargo-fuzz is missing; cargo install --locked cargo-fuzz");
    let mut install = cargo();
    install
        .current_dir(sys::repo_root())
        .env_remove("CARGO_TARGET_DIR")
        .args(["install", "--locked", "cargo-fuzz"]);
    sys::run(&mut install)
}

/// Builds every target, instrumented.
fn build() -> Result<()> {
    ensure_cargo_fuzz()?;
    println!("xtask: cargo fuzz build {}", BUILD_FLAGS.join(" "));
    sys::run(cargo().args(["fuzz", "build"]).args(BUILD_FLAGS))
}

/// What one run of one target did.
#[derive(Debug, Default)]
struct RunReport {
    name: String,
    seconds: f64,
    executions: Option<u64>,
    exec_per_sec: Option<u64>,
    corpus: usize,
    /// Crash (or hang, or out-of-memory) inputs libFuzzer wrote.
    artifacts: Vec<PathBuf>,
    /// libFuzzer's own account of what went wrong, and the panic message.
    failure: Option<String>,
    log: PathBuf,
}

fn count_files(dir: &Path) -> usize {
    fs::read_dir(dir).map_or(0, |d| d.filter_map(|e| e.ok()).count())
}

/// Runs target `name` for `seconds`, its growing corpus in `fuzz/corpus/<name>/` and its
/// committed seeds in `fuzz/seeds/<name>/`; the log goes to `build/fuzz/<name>.log`.
fn run_target(name: &str, seconds: u32) -> Result<RunReport> {
    let dir = fuzz_dir();
    let corpus = dir.join("corpus").join(name);
    let seeds = dir.join("seeds").join(name);
    let logs = sys::build_dir().join("fuzz");
    for d in [&corpus, &seeds, &logs] {
        fs::create_dir_all(d).ctx(|| format!("creating {}", d.display()))?;
    }
    let log = logs.join(format!("{name}.log"));
    let out = fs::File::create(&log).ctx(|| format!("creating {}", log.display()))?;
    let err = out
        .try_clone()
        .ctx(|| format!("opening {}", log.display()))?;

    let mut cmd = cargo();
    cmd.args(["fuzz", "run"])
        .args(BUILD_FLAGS)
        .arg(name)
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let started = Instant::now();
    let status = cmd.status().map_err(|source| Error::Spawn {
        program: "cargo fuzz".into(),
        source,
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log).ctx(|| format!("reading {}", log.display()))?;

    let stat = |key: &str| {
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix(key))
            .find_map(|v| v.trim().parse::<u64>().ok())
    };
    let artifacts: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_once("Test unit written to "))
        .map(|(_, p)| dir.join(p.trim()))
        .collect();
    let failure = (!status.success()).then(|| {
        // The panic (or libFuzzer's SUMMARY) is what a person needs first.
        let why: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("panicked at")
                    || l.starts_with("assertion")
                    || l.starts_with("SUMMARY:")
                    || l.starts_with("==") && l.contains("ERROR")
                    || l.starts_with("error")
            })
            .take(6)
            .collect();
        if why.is_empty() {
            format!("cargo fuzz run exited with {status}")
        } else {
            why.join("\n    ")
        }
    });
    Ok(RunReport {
        name: name.to_string(),
        seconds,
        executions: stat("stat::number_of_executed_units:"),
        exec_per_sec: stat("stat::average_exec_per_sec:"),
        corpus: count_files(&corpus),
        artifacts,
        failure,
        log,
    })
}

fn show(n: Option<u64>) -> String {
    n.map_or_else(|| "?".into(), |n| n.to_string())
}

impl RunReport {
    fn print(&self) {
        println!(
            "xtask: fuzz {}: {} executions in {:.0} s ({} exec/s), corpus {}, {} crash{}",
            self.name,
            show(self.executions),
            self.seconds,
            show(self.exec_per_sec),
            self.corpus,
            self.artifacts.len(),
            if self.artifacts.len() == 1 { "" } else { "es" },
        );
        for a in &self.artifacts {
            println!("  crash input: {}", a.display());
        }
        if let Some(f) = &self.failure {
            println!("  {f}");
            println!("  log: {}", self.log.display());
        }
    }

    fn failed(&self) -> bool {
        self.failure.is_some() || !self.artifacts.is_empty()
    }

    /// As a test outcome: failed, with the crash inputs and the reason, if it crashed.
    fn outcome(&self) -> Outcome {
        let mut failures: Vec<String> = self
            .artifacts
            .iter()
            .map(|a| format!("crash input {}", a.display()))
            .collect();
        if let Some(f) = &self.failure {
            failures.push(format!("{f} (log: {})", self.log.display()));
        }
        Outcome {
            name: format!("fuzz-{}", self.name),
            failures,
            console: None,
        }
    }
}

/// `cargo xtask fuzz [--seconds N] [--target NAME]`: each target for N seconds, then a table;
/// fails if any target crashed.
pub fn fuzz(seconds: u32, only: Option<&str>) -> Result<bool> {
    let all = targets()?;
    let selected: Vec<&String> = all
        .iter()
        .filter(|t| only.is_none_or(|o| t.as_str() == o))
        .collect();
    if selected.is_empty() {
        return Err(Error::Usage(format!(
            "no fuzz target `{}`; targets: {}",
            only.unwrap_or_default(),
            all.join(", ")
        )));
    }
    build()?;
    let mut reports = Vec::new();
    for name in selected {
        println!("xtask: fuzzing {name} for {seconds} s ...");
        let r = run_target(name, seconds)?;
        r.print();
        reports.push(r);
    }

    println!();
    println!(
        "{:<14} {:>8} {:>14} {:>10} {:>7} {:>8}",
        "target", "seconds", "executions", "exec/s", "corpus", "crashes"
    );
    for r in &reports {
        println!(
            "{:<14} {:>8.0} {:>14} {:>10} {:>7} {:>8}",
            r.name,
            r.seconds,
            show(r.executions),
            show(r.exec_per_sec),
            r.corpus,
            if r.failed() {
                r.artifacts.len().max(1).to_string()
            } else {
                "0".into()
            }
        );
    }
    let crashed: Vec<&str> = reports
        .iter()
        .filter(|r| r.failed())
        .map(|r| r.name.as_str())
        .collect();
    if crashed.is_empty() {
        println!("no crashes");
    } else {
        println!("crashed: {}", crashed.join(", "));
        println!("each crash input reproduces with `cargo fuzz run --sanitizer none -a <target> <input>` in fuzz/");
    }
    Ok(crashed.is_empty())
}

/// The fuzz step of `cargo xtask test`: the committed seeds replayed as a plain `cargo test`
/// of the fuzz workspace (one outcome), then every target for `seconds` (one outcome each).
pub fn test_step(seconds: u32, record: &mut dyn FnMut(Outcome, Instant)) {
    let t = Instant::now();
    println!("xtask: cargo test (fuzz/: the seed corpus replayed)");
    let seeds = sys::run(cargo().arg("test"));
    record(
        Outcome {
            name: "fuzz-seeds".into(),
            failures: seeds.err().map(|e| e.to_string()).into_iter().collect(),
            console: None,
        },
        t,
    );

    let names = match targets().and_then(|names| build().map(|()| names)) {
        Ok(names) => names,
        Err(e) => {
            let names = targets().unwrap_or_default();
            for name in names {
                let o = Outcome::not_run(format!("fuzz-{name}"), format!("not run: {e}"));
                record(o, Instant::now());
            }
            return;
        }
    };
    for name in names {
        let t = Instant::now();
        match run_target(&name, seconds) {
            Ok(r) => {
                r.print();
                record(r.outcome(), t);
            }
            Err(e) => record(
                Outcome::not_run(format!("fuzz-{name}"), format!("not run: {e}")),
                t,
            ),
        }
    }
}

/// How long `cargo xtask fuzz` runs each target unless told (the "ten minutes per target" of
/// a long run).
pub const DEFAULT_SECONDS: u32 = 600;
/// How long the test suite runs each target.
pub const TEST_SECONDS: u32 = 15;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_target_is_a_cargo_fuzz_binary() {
        let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
        let mut bins: Vec<String> = manifest
            .split("[[bin]]")
            .skip(1)
            .filter_map(|b| {
                let line = b.lines().find(|l| l.starts_with("name = "))?;
                Some(
                    line.trim_start_matches("name = ")
                        .trim_matches('"')
                        .to_string(),
                )
            })
            .collect();
        bins.sort();
        assert_eq!(targets().unwrap(), bins);
        assert!(bins.iter().any(|b| b == "config"), "{bins:?}");
    }

    #[test]
    fn every_target_has_a_seed_directory() {
        let names = targets().unwrap();
        assert!(names.len() >= 14, "{names:?}");
        // One per virtio device model, over the shared harness in fuzz/src/virtio/.
        for device in ["blk", "net", "console", "rng"] {
            let name = format!("virtio_{device}");
            assert!(names.contains(&name), "no {name} in {names:?}");
        }
        for n in &names {
            let seeds = fuzz_dir().join("seeds").join(n);
            assert!(count_files(&seeds) > 0, "{} is empty", seeds.display());
        }
    }
}
