#!/bin/sh
# As run.sh, but QEMU starts halted with a gdb stub on :1234 (it prints how to attach).
exec cargo xtask run --gdb "$@"
