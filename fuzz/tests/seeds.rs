//! Replays every committed seed (`seeds/<target>/*`) through its target's checks: the seeds,
//! and any crash input once added there, are regression tests that need no fuzzer.

use std::fs;
use std::path::Path;

#[test]
fn every_seed_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    for (name, check) in rhyve_fuzz::TARGETS {
        let dir = root.join(name);
        let mut seeds: Vec<_> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds for {name}");
        for seed in seeds {
            let data = fs::read(&seed).expect("seed file");
            println!("{}", seed.display());
            check(&data);
        }
    }
}
