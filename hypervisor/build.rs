//! Links the bare-metal image with rhyve's linker script and embeds the VMM partition's image
//! (built first by `cargo xtask build`, which names it in RHYVE_VMM_IMAGE); host builds need
//! neither.
use std::env;
use std::path::PathBuf;

fn main() {
    let script = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"))
        .join("../linker/hypervisor.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-env-changed=RHYVE_VMM_IMAGE");
    if env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("none") {
        println!("cargo:rustc-link-arg-bins=-T{}", script.display());
        match env::var("RHYVE_VMM_IMAGE") {
            Ok(path) => println!("cargo:rerun-if-changed={path}"),
            Err(_) => panic!(
                "RHYVE_VMM_IMAGE is not set: the core embeds the VMM partition's image; \
                 build with `cargo xtask build`, which builds the VMM first"
            ),
        }
    }
}
