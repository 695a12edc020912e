//! The VMs a scenario boots under rhyve, and the files of their boot bundle.

use std::path::PathBuf;

use crate::guest::GuestFiles;

/// The kernel and initramfs under the names the configurations use.
pub fn linux_files(guest: &GuestFiles) -> Vec<(String, PathBuf)> {
    vec![
        ("Image".into(), guest.kernel.clone()),
        ("initramfs".into(), guest.initrd.clone()),
    ]
}
