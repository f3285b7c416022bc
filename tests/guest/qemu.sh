# shellcheck shell=bash
# The qemu machine shared by run and shell. Sourced after common.sh.
# shellcheck disable=SC2034 # the variables are used by the sourcing scripts

# quiet loglevel=3: only kernel errors reach the console between scenario lines.
# no_timer_check: at boot the kernel counts timer ticks over a busy-wait and
# panics ("IO-APIC + timer doesn't work!") if too few arrive; under TCG on a
# loaded host they do not (docs/testing.md).
KERNEL_CMDLINE="console=ttyS0 panic=-1 quiet loglevel=3 no_timer_check"
# The machine; guest_machine changes it for a scenario that asks.
MACHINE="pc,nvdimm=on"
MACHINE_DEVICES=()

# A scenario asks for another machine with a line "# guest-machine: NAME":
#   iommu  q35 with an emulated Intel IOMMU (VT-d, intel_iommu=on) and qemu's
#          `edu` PCI device, for the scenario to bind to vfio-pci. intremap=off:
#          interrupt remapping would need a split irqchip, and VFIO never
#          raises the device's interrupts here (vfio_iommu_type1 is loaded
#          with allow_unsafe_interrupts=1 instead). tests/scenarios/vfio.sh.
# Call before make_rundir.
guest_machine() { # scenario
	local name
	name=$(sed -n 's/^# guest-machine: *\([a-z0-9]*\) *$/\1/p' "$1" | head -n1)
	case $name in
	"") ;;
	iommu)
		MACHINE="q35,nvdimm=on"
		# The IOMMU first: it must exist before any PCI device is created.
		MACHINE_DEVICES=(-device "intel-iommu,intremap=off" -device edu)
		KERNEL_CMDLINE+=" intel_iommu=on"
		;;
	*) die "$1: unknown guest-machine '$name' (known: iommu)" ;;
	esac
	guest_drive "$1"
}

# A scenario asks for a disk with a line "# guest-drive: NAME":
#   cleanroot  CLEANROOT_IMAGE (common.sh), the Debian 12 root with the .deb
#              installed that tests/cleanroot.sh leaves: /dev/vda in the
#              guest (virtio-blk). snapshot=on: the guest's writes go to a
#              temporary file, the image stays as it was for the next run.
#              tests/scenarios/cleanroot.sh.
guest_drive() { # scenario
	local name
	name=$(sed -n 's/^# guest-drive: *\([a-z0-9]*\) *$/\1/p' "$1" | head -n1)
	case $name in
	"") ;;
	cleanroot)
		[[ -s $CLEANROOT_IMAGE ]] || die "$1 needs $CLEANROOT_IMAGE: run tests/cleanroot.sh first"
		MACHINE_DEVICES+=(-drive "file=$CLEANROOT_IMAGE,if=virtio,format=raw,snapshot=on")
		;;
	*) die "$1: unknown guest-drive '$name' (known: cleanroot)" ;;
	esac
}

# Per-run directory: fresh sparse pmem backing files make runs independent
# and lets several runs (other engineers, CI) go at once.
make_rundir() {
	mkdir -p "$CACHE/runs"
	# Logs of failed runs are kept for a day.
	find "$CACHE/runs" -mindepth 1 -maxdepth 1 -mtime +0 -exec rm -rf {} +
	RUNDIR=$(mktemp -d "$CACHE/runs/run.XXXXXX")
	KEEP_RUNDIR=0
	trap cleanup_rundir EXIT
	truncate -s 512M "$RUNDIR/pmem0.img"
	truncate -s 256M "$RUNDIR/pmem1.img"
	# thread=single: one host thread runs both vCPUs. Under thread=multi a
	# vCPU can run a stale translation of kernel text another vCPU has just
	# patched: the 6.12 guest died at boot with "Oops: int3" in
	# sched_clock_cpu, the static key "sched_clock: Marking stable" flips
	# (docs/testing.md). Scenarios take 15-20 % longer.
	QEMU=(
		qemu-system-x86_64 -accel "tcg,thread=single" -cpu max -smp 2
		-machine "$MACHINE" "${MACHINE_DEVICES[@]}" -m "2G,slots=4,maxmem=8G"
		-object "memory-backend-file,id=mem0,share=on,mem-path=$RUNDIR/pmem0.img,size=512M"
		-device "nvdimm,id=nvdimm0,memdev=mem0"
		-object "memory-backend-file,id=mem1,share=on,mem-path=$RUNDIR/pmem1.img,size=256M"
		-device "nvdimm,id=nvdimm1,memdev=mem1"
		-nic none -display none -vga none -monitor none -no-reboot
	)
}

keep_rundir() {
	KEEP_RUNDIR=1
}

cleanup_rundir() {
	if [[ ${DAXGUARD_KEEP_RUN:-0} == 1 ]]; then
		note "run directory kept: $RUNDIR"
	elif ((KEEP_RUNDIR)); then
		# The logs help; the images and the initrd are big and rebuilt anyway.
		rm -f "$RUNDIR"/*.img "$RUNDIR"/*.cpio
		note "console log: $RUNDIR/console.log"
	else
		rm -rf "$RUNDIR"
	fi
}

# Passes the serial console through readably: CR dropped, the exit marker
# diverted to $2, the poweroff line dropped; everything is also logged to $1.
console_filter() {
	local log=$1 marker=$2
	: >"$marker"
	awk -v logf="$log" -v marker="$marker" '
		{ sub(/\r+$/, ""); print > logf; fflush(logf) }
		/DAXGUARD-GUEST-EXIT=/ { print > marker; fflush(marker); next }
		/^\[ *[0-9.]+\] reboot: Power down$/ { next }
		{ print; fflush() }
	'
}
