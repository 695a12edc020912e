#!/bin/sh
# Fetch Debian's arm64 kernel and busybox, build the test initramfs, into build/guest/.
exec cargo xtask fetch-guest "$@"
