#!/bin/sh
# Boot a guest under rhyve in QEMU (see `cargo xtask help`); arguments pass through.
exec cargo xtask run "$@"
