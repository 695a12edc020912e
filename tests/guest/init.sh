#!/bin/busybox sh
# /init of rhyve's busybox test guest (packed into build/guest/initramfs.cpio by
# `cargo xtask fetch-guest`). Its kernel command line picks the mode:
#   rhyve.test=1   print what the integration tests check (CPU count, memory, interrupt
#                  counts), then power off (after the ticks, if any)
#   rhyve.ticks=N  print `RHYVE-TICK i` every half second, N times (after the test, if any)
#   rhyve.bench=1  power off at once (the benchmark times boot up to RHYVE-INIT-START)
#   rhyve.virtio=1 exercise virtio-rng and virtio-console (hvc0 and port 1), power off
#   rhyve.blk=1    first boot: make a filesystem on /dev/vda, write files, sync, reboot;
#                  second boot (the filesystem is there): read them back, power off
#   rhyve.blkro=1  /dev/vda is read-only: try to write it anyway, read the first bytes back,
#                  power off
#   rhyve.blkslice=1  /dev/vda is a slice of the machine's disk: write a fresh marker at its
#                  first byte and in its last sector, read both back, power off
#   rhyve.iobench=PORT  time dd on /dev/vda (write, then read after dropping the cache) and
#                  a 4 MiB POST to the host's PORT; print the figures, power off
#   rhyve.net2=server|client  two guests on rhyve's switch: the server (10.0.3.1) serves random
#                  text over HTTP, the client (10.0.3.2) fetches it; each prints a checksum
#                  and its card's address
#   rhyve.rtc=1    read the RTC (/dev/rtc0), set the system time from it, then write another
#                  time to it and read that back; print each, power off
#   rhyve.boot=TAG booted by a firmware's loader from the disk (the tests of U-Boot and UEFI):
#                  print the TAG that loader's configuration gave and whether the kernel
#                  came through UEFI, power off
#   rhyve.efivar=1 (with rhyve.boot) mount efivarfs; if the test variable is absent, write it
#                  with a fresh random value and reboot (the firmware runs again); once it is
#                  there, print the value read and power off
#   rhyve.net=PORT bring eth0 up with QEMU user networking's static address, send 4 MiB of
#                  random text to the host's PORT (HTTP POST to 10.0.2.2), power off
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

# The kernel's virtio drivers are modules (Debian's cloud kernel); xtask packs them in
# dependency order, listed here in the same order.
for m in virtio_ring virtio virtio_mmio virtio_console virtio-rng virtio_blk failover \
	net_failover virtio_net; do
	[ -f "/lib/modules/virtio/$m.ko" ] && insmod "/lib/modules/virtio/$m.ko"
done

# Waits up to $2 seconds for file $1 to exist.
wait_for() {
	i=0
	while [ ! -e "$1" ] && [ "$i" -lt $(($2 * 10)) ]; do
		usleep 100000
		i=$((i + 1))
	done
	[ -e "$1" ]
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

if has_param rhyve.virtio=1; then
	# Entropy: two reads of the device must differ (a constant or a replayed source fails).
	if wait_for /dev/hwrng 10; then
		echo "RHYVE-HWRNG-SOURCE $(cat /sys/class/misc/hw_random/rng_current)"
		echo "RHYVE-HWRNG-1 $(head -c 64 /dev/hwrng | sha256sum | cut -d' ' -f1)"
		echo "RHYVE-HWRNG-2 $(head -c 64 /dev/hwrng | sha256sum | cut -d' ' -f1)"
		echo "RHYVE-HWRNG-BYTES $(head -c 32 /dev/hwrng | od -An -tx1 | tr -d ' \n')"
	else
		echo "RHYVE-HWRNG-MISSING"
	fi
	# The console: hvc0, and port 1 (named by the device) whose lines rhyve tags.
	if wait_for /dev/hvc0 10; then
		echo "RHYVE-HVC0 $((6 * 7))" >/dev/hvc0
	else
		echo "RHYVE-HVC0-MISSING"
	fi
	if wait_for /dev/vport0p1 10; then
		echo "RHYVE-VPORT $((6 * 7)) $(cat /sys/class/virtio-ports/vport0p1/name)" >/dev/vport0p1
	else
		echo "RHYVE-VPORT-MISSING"
	fi
	echo RHYVE-TEST-DONE
	poweroff -f
fi

if has_param rhyve.rtc=1; then
	if wait_for /dev/rtc0 10; then
		echo "RHYVE-RTC-NAME $(cat /sys/class/rtc/rtc0/name)"
		echo "RHYVE-RTC-READ $(cat /sys/class/rtc/rtc0/since_epoch)"
		hwclock -s -u
		echo "RHYVE-RTC-SYS $(date -u +%s)"
		# A time far from now (2009-02-13 23:31:30 UTC = 1234567890 s), so a read-back of
		# anything but what was written cannot pass.
		date -u -s "2009-02-13 23:31:30" >/dev/null
		hwclock -w -u
		echo "RHYVE-RTC-WROTE 1234567890 $(cat /sys/class/rtc/rtc0/since_epoch)"
	else
		echo "RHYVE-RTC-MISSING"
	fi
	echo RHYVE-TEST-DONE
	poweroff -f
fi

tag=$(param_value rhyve.boot)
if [ -n "$tag" ]; then
	efi=0
	[ -d /sys/firmware/efi ] && efi=1
	echo "RHYVE-BOOT $tag efi=$efi"
	if has_param rhyve.efivar=1; then
		# A variable of rhyve's own vendor GUID, non-volatile, seen at boot and run time.
		vars=/sys/firmware/efi/efivars
		var="$vars/RhyveTest-72687976-6500-4e56-8a52-54455354ffff"
		insmod /lib/modules/efi/efivarfs.ko
		mount -t efivarfs efivarfs "$vars" || echo "RHYVE-EFIVAR-MOUNT-FAILED"
		if [ -e "$var" ]; then
			# The first 4 bytes of the file are the attributes.
			echo "RHYVE-EFIVAR-READ $(dd if="$var" bs=1 skip=4 2>/dev/null)"
			echo RHYVE-TEST-DONE
			poweroff -f
		fi
		value="rhyve-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
		# Attributes NON_VOLATILE | BOOTSERVICE_ACCESS | RUNTIME_ACCESS (7, little-endian),
		# then the data: efivarfs takes the whole variable in one write.
		printf '\007\000\000\000%s' "$value" >/tmp/efivar
		if cat /tmp/efivar >"$var"; then
			echo "RHYVE-EFIVAR-WROTE $value"
		else
			echo "RHYVE-EFIVAR-WRITE-FAILED"
		fi
		umount "$vars"
		reboot -f
	fi
	echo RHYVE-TEST-DONE
	poweroff -f
fi

if has_param rhyve.blk=1; then
	mkdir -p /mnt
	echo "RHYVE-BLK-SIZE $(cat /sys/block/vda/size 2>/dev/null)"
	if mount -t ext2 /dev/vda /mnt 2>/dev/null; then
		echo "RHYVE-BLK-READ $(sha256sum /mnt/data.txt | cut -d' ' -f1) $(wc -l </mnt/data.txt) $(tail -n 1 /mnt/data.txt)"
		echo "RHYVE-BLK-MARK-READ $(cat /mnt/mark.txt)"
		umount /mnt
		echo RHYVE-TEST-DONE
		poweroff -f
	fi
	mke2fs /dev/vda >/dev/null 2>&1 || echo "RHYVE-BLK-MKFS-FAILED"
	mount -t ext2 /dev/vda /mnt || echo "RHYVE-BLK-MOUNT-FAILED"
	seq 1 100000 >/mnt/data.txt
	# A marker no earlier run wrote: the test looks for it in the disk image on the host.
	mark="rhyve-blk-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	echo "$mark" >/mnt/mark.txt
	sync
	echo "RHYVE-BLK-WROTE $(sha256sum /mnt/data.txt | cut -d' ' -f1) $mark"
	umount /mnt
	reboot -f
fi

# The value of kernel parameter $1 (`$1=value`), if any.
param() {
	for w in $cmdline; do
		case "$w" in "$1="*) echo "${w#"$1"=}" ;; esac
	done
}

# QEMU user networking: the guest is 10.0.2.15, the host 10.0.2.2.
net_up() {
	wait_for /sys/class/net/eth0 10 || return 1
	ip link set eth0 up &&
		ip addr add 10.0.2.15/24 dev eth0 &&
		ip route add default via 10.0.2.2
}

if has_param rhyve.blkro=1; then
	echo "RHYVE-BLKRO-RO $(cat /sys/block/vda/ro)"
	# Linux refuses by itself (the device offered VIRTIO_BLK_F_RO); `--setrw` is tried anyway.
	blockdev --setrw /dev/vda
	err=$(dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=fsync 2>&1 >/dev/null)
	echo "RHYVE-BLKRO-WRITE $? $err"
	echo 3 >/proc/sys/vm/drop_caches
	echo "RHYVE-BLKRO-READ $(head -c 16 /dev/vda | od -An -tx1 | tr -d ' \n')"
	echo RHYVE-TEST-DONE
	poweroff -f
fi

if has_param rhyve.blkslice=1; then
	size=$(cat /sys/block/vda/size)
	# A marker no earlier run wrote: the test finds it in the image at this slice's offsets.
	mark="rhyve-slice-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
	printf '%s' "$mark" | dd of=/dev/vda bs=512 seek=0 conv=notrunc,fsync 2>/dev/null
	printf '%s' "$mark" | dd of=/dev/vda bs=512 seek=$((size - 1)) conv=notrunc,fsync 2>/dev/null
	echo 3 >/proc/sys/vm/drop_caches
	first=$(dd if=/dev/vda bs=512 count=1 2>/dev/null | head -c ${#mark})
	last=$(dd if=/dev/vda bs=512 skip=$((size - 1)) count=1 2>/dev/null | head -c ${#mark})
	echo "RHYVE-SLICE $size $mark $([ "$first" = "$mark" ] && [ "$last" = "$mark" ] && echo read-back)"
	# Linux sends DISCARD and WRITE_ZEROES only if the device offered them (a non-zero maximum).
	q=/sys/block/vda/queue
	blkdiscard -o 4096 -l 8192 /dev/vda
	echo "RHYVE-SLICE-DISCARD $? $(cat $q/discard_max_bytes) $(cat $q/write_zeroes_max_bytes)"
	echo RHYVE-TEST-DONE
	poweroff -f
fi

# Seconds since boot (10 ms resolution).
now() { cut -d' ' -f1 /proc/uptime; }

port=$(param rhyve.iobench)
if [ -n "$port" ]; then
	mib=32
	t0=$(now)
	dd if=/dev/zero of=/dev/vda bs=1048576 count=$mib conv=fsync 2>/dev/null
	t1=$(now)
	echo "RHYVE-IOBENCH blk-write $((mib * 1048576)) $t0 $t1"
	sync
	echo 3 >/proc/sys/vm/drop_caches
	t0=$(now)
	dd if=/dev/vda of=/dev/null bs=1048576 count=$mib 2>/dev/null
	t1=$(now)
	echo "RHYVE-IOBENCH blk-read $((mib * 1048576)) $t0 $t1"
	if net_up; then
		head -c 3145728 /dev/urandom | base64 >/tmp/net.bin
		t0=$(now)
		wget -q -O /dev/null --post-file=/tmp/net.bin "http://10.0.2.2:$port/"
		t1=$(now)
		echo "RHYVE-IOBENCH net-send $(wc -c </tmp/net.bin) $t0 $t1"
	fi
	echo RHYVE-TEST-DONE
	poweroff -f
fi

role=$(param rhyve.net2)
if [ -n "$role" ]; then
	wait_for /sys/class/net/eth0 10 && ip link set eth0 up
	mkdir -p /srv
	if [ "$role" = server ]; then
		ip addr add 10.0.3.1/24 dev eth0
		head -c 786432 /dev/urandom | base64 >/srv/data.txt
		echo "RHYVE-NET2-SERVED $(sha256sum /srv/data.txt | cut -d' ' -f1) $(cat /sys/class/net/eth0/address)"
		httpd -p 8080 -h /srv
		# Until the client says it is done (its own /done), at most 2 minutes.
		i=0
		until wget -q -O /dev/null http://10.0.3.2:8080/done 2>/dev/null || [ $i -ge 120 ]; do
			sleep 1
			i=$((i + 1))
		done
	else
		ip addr add 10.0.3.2/24 dev eth0
		i=0
		until wget -q -O /tmp/data.txt http://10.0.3.1:8080/data.txt 2>/dev/null || [ $i -ge 120 ]; do
			sleep 1
			i=$((i + 1))
		done
		echo "RHYVE-NET2-GOT $(sha256sum /tmp/data.txt | cut -d' ' -f1) $(cat /sys/class/net/eth0/address)"
		echo done >/srv/done
		httpd -p 8080 -h /srv
		sleep 15
	fi
	echo RHYVE-TEST-DONE
	poweroff -f
fi

port=$(param rhyve.net)
if [ -n "$port" ]; then
	if net_up; then
		echo "RHYVE-NET-MAC $(cat /sys/class/net/eth0/address)"
		echo "RHYVE-NET-QUEUES $(ls /sys/class/net/eth0/queues | tr '\n' ' ')"
		# Text: busybox wget posts a file as a string (up to its first NUL byte).
		head -c 3145728 /dev/urandom | base64 >/tmp/net.bin
		echo "RHYVE-NET-SENT $(sha256sum /tmp/net.bin | cut -d' ' -f1) $(wc -c </tmp/net.bin)"
		start=$(cut -d' ' -f1 /proc/uptime)
		wget -q -O /dev/null --post-file=/tmp/net.bin "http://10.0.2.2:$port/"
		rc=$?
		echo "RHYVE-NET-DONE $rc $start $(cut -d' ' -f1 /proc/uptime)"
	else
		echo "RHYVE-NET-NO-ETH0"
	fi
	echo RHYVE-TEST-DONE
	poweroff -f
fi

if has_param rhyve.bench=1; then
	poweroff -f
fi

# The interactive guest: its network card on QEMU user networking, if it has one.
if [ -e /sys/class/net/eth0 ] && net_up 2>/dev/null; then
	echo "eth0: 10.0.2.15/24, gateway 10.0.2.2"
fi
echo
echo "rhyve busybox guest: $(uname -sr), $(nproc) CPU(s). 'poweroff -f' ends it."
while :; do
	setsid cttyhack sh
	echo "shell exited; starting another"
done
