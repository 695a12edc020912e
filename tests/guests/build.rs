//! Links the bare-metal test guests with linker/test-guest.ld; host builds need nothing.
use std::env;
use std::path::PathBuf;

fn main() {
    let script = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("../../linker/test-guest.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
    }
}
