#!/bin/busybox sh
# /init of rhyve's busybox test guest (packed into build/guest/initramfs.cpio by
# `cargo xtask fetch-guest`). Its kernel command line picks the mode:
#   rhyve.test=1   print what the integration tests check (CPU count, memory, interrupt
#                  counts), then power off (after the ticks, if any)
#   rhyve.ticks=N  print `RHYVE-TICK i` every half second, N times (after the test, if any)
#   rhyve.bench=1  power off at once (the benchmark times boot up to RHYVE-INIT-START)
#   otherwise      an interactive shell on the console
# The markers below are read by xtask/src/scenarios/; change them together.

# First output line: the benchmark's stop-watch and the tests' "init ran" marker.
echo RHYVE-INIT-START

/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

cmdline=$(cat /proc/cmdline)
has_param() {
	case " $cmdline " in *" $1 "*) return 0 ;; esac
	return 1
}

# Keeps every CPU busy in short bursts with sleeps in between, so wake-ups and migrations make
# the scheduler send rescheduling and function-call IPIs; stops after $1 seconds.
cross_cpu_activity() {
	pids=""
	i=0
	while [ "$i" -lt $(($(nproc) * 2)) ]; do
		(while :; do
			n=0
			while [ "$n" -lt 200 ]; do n=$((n + 1)); done
			usleep 2000
		done) &
		pids="$pids $!"
		i=$((i + 1))
	done
	sleep "$1"
	kill $pids
	wait 2>/dev/null
}

param_value() {
	for p in $cmdline; do
		case "$p" in "$1"=*) echo "${p#*=}" ;; esac
	done
}

ticks() {
	i=1
	while [ "$i" -le "$1" ]; do
		echo "RHYVE-TICK $i"
		usleep 500000
		i=$((i + 1))
	done
}

if has_param rhyve.test=1; then
	echo "RHYVE-NPROC $(nproc)"
	echo "RHYVE-MEMTOTAL $(grep MemTotal /proc/meminfo)"
	echo "RHYVE-IRQ-BEGIN 1"
	cat /proc/interrupts
	echo "RHYVE-IRQ-END 1"
	cross_cpu_activity 2
	echo "RHYVE-IRQ-BEGIN 2"
	cat /proc/interrupts
	echo "RHYVE-IRQ-END 2"
	echo RHYVE-TEST-DONE
fi

n=$(param_value rhyve.ticks)
if [ -n "$n" ]; then
	ticks "$n"
	echo RHYVE-TICKS-DONE
fi

if has_param rhyve.test=1 || [ -n "$n" ]; then
	poweroff -f
fi

if has_param rhyve.bench=1; then
	poweroff -f
fi

echo
echo "rhyve busybox guest: $(uname -sr), $(nproc) CPU(s). 'poweroff -f' ends it."
while :; do
	setsid cttyhack sh
	echo "shell exited; starting another"
done
