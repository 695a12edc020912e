//! The lints the workspace declares, enforced: `cargo fmt --check` and `cargo clippy -D warnings`
//! on the host crates (the workspace and the fuzzers' own) and on every crate built for the
//! aarch64 target; and no import cycle between the modules of the core and the VMM
//! ([`crate::modcycles`]). `cargo xtask test` runs them before anything slow.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use crate::modcycles;
use crate::scenarios::Outcome;
use crate::sys;
use crate::toolchain;

/// The module folders kept free of import cycles, with the path their modules have in their
/// crate.
const ACYCLIC: &[(&str, &str)] = &[
    ("hypervisor/src", "crate"),
    ("hypervisor/src/runtime", "crate::runtime"),
    ("hypervisor/src/vgic", "crate::vgic"),
    ("hypervisor/src/arch", "crate::arch"),
    ("hypervisor/src/arch/aarch64", "crate::arch::aarch64"),
    ("vmm/src", "crate"),
    ("vmm/src/partition", "crate::partition"),
    ("vmm/src/virtio", "crate::virtio"),
];

/// The import cycles in [`ACYCLIC`]'s folders, one line each.
fn module_cycles() -> crate::error::Result<Vec<String>> {
    let root = sys::repo_root();
    let mut found = Vec::new();
    for (dir, path) in ACYCLIC {
        let g = modcycles::graph(&root.join(dir), path)?;
        for c in modcycles::cycles(&g) {
            found.push(format!("{dir}: {}", c.join(" <-> ")));
        }
    }
    Ok(found)
}

/// The cargo that runs us (the host toolchain).
fn host_cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo")));
    c.current_dir(sys::repo_root());
    c
}

/// The fuzzers' manifest: their own workspace, which the root one excludes.
const FUZZ_MANIFEST: &str = "fuzz/Cargo.toml";

/// The scenario files, `xtask/src/scenarios/*.rs`. Their `mod` lines are written by
/// xtask/build.rs, and `cargo fmt` only follows the `mod` lines in the source, so they are
/// named to it.
fn scenario_files() -> Vec<PathBuf> {
    let dir = sys::repo_root().join("xtask").join("src").join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "rs"))
        .collect();
    files.sort();
    files
}

/// One lint step: its name and the command, or why the command could not be made.
fn steps() -> Vec<(&'static str, crate::error::Result<Command>)> {
    let mut fmt = host_cargo();
    fmt.args(["fmt", "--all", "--check", "--"])
        .args(scenario_files());
    let mut fmt_fuzz = host_cargo();
    fmt_fuzz.args(["fmt", "--check", "--manifest-path", FUZZ_MANIFEST]);
    let mut clippy = host_cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--keep-going",
        "--",
        "-D",
        "warnings",
    ]);
    let mut clippy_fuzz = host_cargo();
    clippy_fuzz.args([
        "clippy",
        "--manifest-path",
        FUZZ_MANIFEST,
        "--all-targets",
        "--keep-going",
        "--",
        "-D",
        "warnings",
    ]);
    vec![
        ("lint-fmt", Ok(fmt)),
        ("lint-fmt-fuzz", Ok(fmt_fuzz)),
        ("lint-clippy-host", Ok(clippy)),
        ("lint-clippy-fuzz", Ok(clippy_fuzz)),
        ("lint-clippy-aarch64", toolchain::clippy_aarch64_command()),
    ]
}

/// Runs every lint step, each reported as an outcome of its own; a finding fails its step.
pub fn test_step(record: &mut dyn FnMut(Outcome, std::time::Instant)) {
    let t = std::time::Instant::now();
    println!(
        "xtask: import cycles between modules ({} folders)",
        ACYCLIC.len()
    );
    let failures = match module_cycles() {
        Ok(cycles) => cycles
            .into_iter()
            .map(|c| format!("modules that depend on each other: {c}"))
            .collect(),
        Err(e) => vec![e.to_string()],
    };
    record(
        Outcome {
            name: "lint-module-cycles".into(),
            failures,
            console: None,
        },
        t,
    );
    for (name, cmd) in steps() {
        let t = std::time::Instant::now();
        let result = cmd.and_then(|mut c| {
            println!("xtask: {}", sys::render(&c));
            sys::run(&mut c)
        });
        let failures = match result {
            Ok(()) => vec![],
            Err(e) => vec![format!("{e} (its findings are printed above)")],
        };
        record(
            Outcome {
                name: name.into(),
                failures,
                console: None,
            },
            t,
        );
    }
}
