//! The rhyve image: the EL2 core's entry point.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("rhyve is a bare-metal image: build it with `cargo xtask build`.");
    std::process::exit(2);
}
