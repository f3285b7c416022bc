# shellcheck shell=bash
# Host-side helpers shared by tests/guest/{prepare,run,shell}. Sourced, not run.
# shellcheck disable=SC2034 # the variables are used by the sourcing scripts

GUEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$GUEST_DIR/../.." && pwd)
# The cache is ignored by git; DAXGUARD_TEST_CACHE lets CI or a second work
# tree share one set of downloaded kernels.
CACHE=${DAXGUARD_TEST_CACHE:-$REPO_ROOT/tests/.cache}
KERNELS=(6.12 6.1 6.18)
# The clean Debian 12 root with the .deb installed (tests/cleanroot.sh), as an
# ext4 image a scenario asks for with "# guest-drive: cleanroot" (qemu.sh).
# One per work tree: each installs its own .deb, and the cache may be shared.
CLEANROOT_IMAGE=$CACHE/cleanroot/installed-$(printf '%s' "$REPO_ROOT" | sha256sum | cut -c1-12).img
DEFAULT_KERNEL=6.12

die() {
	echo "guest: error: $*" >&2
	exit 1
}

note() {
	echo "guest: $*" >&2
}

# Host packages the testbed needs. Tools inside the guest are copied from the
# host, so the guest's userland is exactly the host's Debian packages. Open
# MPI, UCX, Slurm and munge go into the guest's "mpi" layer only
# (GUEST_LAYER_mpi_PACKAGES in initramfs.sh).
HOST_PACKAGES=(
	qemu-system-x86 busybox-static kmod ibverbs-utils ibverbs-providers
	libibverbs-dev rdmacm-utils perftest ndctl daxctl iproute2 e2fsprogs
	xfsprogs cpio xz-utils zstd attr coreutils util-linux strace
	debian-archive-keyring liburing2 libv4l-0
	openmpi-bin ucx-utils openssh-client
	slurmctld slurmd slurm-client munge libpmix-dev
)
# The guest's jq (tests/scenarios/container.sh reads the CDI spec with it).
HOST_PACKAGES+=(jq)

kernel_dir() {
	echo "$CACHE/kernels/$1"
}

# Prints the kernel release (uname -r) of a prepared kernel, or fails.
kernel_release() {
	local k=$1 dir
	dir=$(kernel_dir "$k")
	[[ -s $dir/release && -d $dir/root ]] || return 1
	cat "$dir/release"
}

check_kernel_name() {
	local k
	for k in "${KERNELS[@]}"; do
		[[ $1 == "$k" ]] && return 0
	done
	die "unknown kernel '$1' (choose one of: ${KERNELS[*]})"
}

# A kernel the run/shell commands can boot, or a loud reason why not.
require_kernel() {
	local k=$1 dir
	check_kernel_name "$k"
	dir=$(kernel_dir "$k")
	if ! kernel_release "$k" >/dev/null; then
		[[ -s $dir.unavailable ]] && die "kernel $k is not available: $(cat "$dir.unavailable")"
		die "kernel $k is not prepared: run tests/guest/prepare"
	fi
	[[ -s $dir/vmlinuz ]] || die "kernel $k: $dir/vmlinuz missing; rerun tests/guest/prepare"
}
