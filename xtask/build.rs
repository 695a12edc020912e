//! Registers the integration scenarios. Every `.rs` file directly in `src/scenarios/` but
//! `mod.rs` is a scenario file: a module with `pub fn scenarios() -> Vec<Box<dyn Scenario>>`.
//! This writes a `mod` declaration for each and the list of their `scenarios` functions, in
//! file-name order, to `$OUT_DIR/scenario_files.rs`, which `src/scenarios/mod.rs` includes; so
//! a new scenario file is in the suite without any other edit.

use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("src")
        .join("scenarios");
    // Cargo watches a directory's every file, so adding or removing one reruns this.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<(String, PathBuf)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "rs"))
        .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p.clone())))
        .filter(|(name, _)| name != "mod")
        .collect();
    files.sort();
    let mut out = String::from("// Written by xtask/build.rs from the files in src/scenarios/.\n");
    for (name, path) in &files {
        assert!(
            is_identifier(name),
            "{}: a scenario file's name must be a Rust identifier",
            path.display()
        );
        // An absolute path: a `mod` in an included file would be looked for next to it, in
        // OUT_DIR.
        out += &format!("#[path = {:?}]\nmod {name};\n", path.display().to_string());
    }
    out += "\n/// Each scenario file's `scenarios`, in file-name order.\n";
    out += "const SCENARIO_FILES: &[ScenarioFile] = &[\n";
    for (name, _) in &files {
        out += &format!("    {name}::scenarios,\n");
    }
    out += "];\n";
    let dest = Path::new(&env::var("OUT_DIR").expect("set by cargo")).join("scenario_files.rs");
    fs::write(&dest, out).unwrap_or_else(|e| panic!("writing {}: {e}", dest.display()));
}

/// Whether `name` can name a module: ASCII letters, digits and `_`, not starting with a digit.
fn is_identifier(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().next().is_some_and(|c| !c.is_ascii_digit())
}
