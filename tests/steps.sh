# shellcheck shell=bash
# Shared by tests/all and tests/demo: install, build, and count steps.

STEP_PASSED=0
STEP_FAILED=0
FAILED_STEPS=()
# Each step's output is also kept, so that the end of the run can repeat the
# end of every failed step: CI shows the last lines, and a failure early in a
# long run would otherwise scroll out of them.
STEP_LOGS=''
FAILED_LOGS=()
STEP_TAIL_LINES=60

die() {
	echo "daxguard tests: $*" >&2
	exit 2
}

# Runs one step, prints its time and result, and counts it.
step() { # name command...
	local name=$1 start=$SECONDS rc=0 log
	shift
	[[ -n $STEP_LOGS ]] || STEP_LOGS=$(mktemp -d /tmp/daxguard-steps.XXXXXX)
	log=$STEP_LOGS/$((STEP_PASSED + STEP_FAILED + 1)).log
	printf '\n##### %s\n' "$name"
	"$@" 2>&1 | tee "$log"
	rc=${PIPESTATUS[0]}
	if ((rc == 0)); then
		STEP_PASSED=$((STEP_PASSED + 1))
		printf '##### ok: %s (%d s)\n' "$name" $((SECONDS - start))
	else
		STEP_FAILED=$((STEP_FAILED + 1))
		FAILED_STEPS+=("$name (exit $rc)")
		FAILED_LOGS+=("$log")
		printf '##### FAILED: %s (exit %d, %d s)\n' "$name" "$rc" $((SECONDS - start))
	fi
}

# Steps that may run side by side: queue them with queue_step, then run_queue.
# A guest is one busy host thread (qemu TCG, thread=single), so on this
# project's two-core machines two guests at once take about half the time of
# one after the other. Each step's output goes to its own log and is printed
# whole, in the queued order, as soon as it and every step before it ended;
# the counting is step()'s. DAXGUARD_TEST_JOBS=1 runs them one at a time.
QUEUE_NAMES=()
QUEUE_CMDS=()

queue_step() { # name command...
	QUEUE_NAMES+=("$1")
	shift
	QUEUE_CMDS+=("$(printf '%q ' "$@")")
}

run_queue() {
	local jobs=${DAXGUARD_TEST_JOBS:-2} n=${#QUEUE_NAMES[@]} i shown=0 dir rc secs
	[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "DAXGUARD_TEST_JOBS wants a whole number of jobs, not '$jobs'"
	[[ -n $STEP_LOGS ]] || STEP_LOGS=$(mktemp -d /tmp/daxguard-steps.XXXXXX)
	dir=$(mktemp -d "$STEP_LOGS/queue.XXXXXX")
	for ((i = 0; i < n || shown < n; )); do
		if ((i < n)) && (($(jobs -rp | wc -l) < jobs)); then
			(
				start=$SECONDS
				eval "${QUEUE_CMDS[i]}" >"$dir/$i.log" 2>&1 </dev/null
				echo "$? $((SECONDS - start))" >"$dir/$i.rc.tmp"
				mv "$dir/$i.rc.tmp" "$dir/$i.rc"
			) &
			i=$((i + 1))
			continue
		fi
		while ((shown < n)) && [[ -f $dir/$shown.rc ]]; do
			read -r rc secs <"$dir/$shown.rc"
			_show_queued "${QUEUE_NAMES[shown]}" "$dir/$shown.log" "$rc" "$secs"
			shown=$((shown + 1))
		done
		((shown < n)) && { wait -n 2>/dev/null || sleep 1; }
	done
	wait
	QUEUE_NAMES=()
	QUEUE_CMDS=()
}

_show_queued() { # name log rc seconds
	local name=$1 log=$2 rc=$3 secs=$4
	printf '\n##### %s\n' "$name"
	cat "$log"
	if ((rc == 0)); then
		STEP_PASSED=$((STEP_PASSED + 1))
		printf '##### ok: %s (%d s)\n' "$name" "$secs"
	else
		STEP_FAILED=$((STEP_FAILED + 1))
		FAILED_STEPS+=("$name (exit $rc)")
		FAILED_LOGS+=("$log")
		printf '##### FAILED: %s (exit %d, %d s)\n' "$name" "$rc" "$secs"
	fi
}

finish() {
	local i
	for i in "${!FAILED_STEPS[@]}"; do
		printf '\n##### the last %d lines of failed step: %s\n' "$STEP_TAIL_LINES" "${FAILED_STEPS[i]}"
		tail -n "$STEP_TAIL_LINES" "${FAILED_LOGS[i]}"
	done
	[[ -z $STEP_LOGS ]] || rm -rf "$STEP_LOGS"
	echo
	((STEP_FAILED == 0)) || printf 'failed: %s\n' "${FAILED_STEPS[@]}"
	echo "steps: $STEP_PASSED passed, $STEP_FAILED failed"
	((STEP_FAILED == 0))
}

# What building and the host tests need, beyond the Rust toolchain.
# libpython3.11-testsuite: CPython's own tests, run under the preload (tests/foreign/cpython.sh).
# man-db renders the generated man pages (tools/tests/install.rs); lintian,
# and dpkg-dev check the Debian package, systemd-analyze the unit drop-in
# (tests/package.sh).
# clang also compiles `daxguard watch`'s BPF program; libelf-dev and zlib1g-dev are
# for the libbpf that libbpf-sys builds from its own copy (tools/build.rs).
BUILD_PACKAGES=(build-essential pkg-config cmake clang libclang-dev libibverbs-dev ibverbs-providers
	liburing-dev libv4l-dev binutils strace util-linux python3 libpython3.11-testsuite valgrind
	libelf-dev zlib1g-dev man-db lintian dpkg-dev systemd)
# Open MPI's mpicc and headers for tests/c/mpiwin.c; Slurm's spank.h for
# the SPANK plugin (tools/dist/spank).
BUILD_PACKAGES+=(libopenmpi-dev openmpi-bin)
BUILD_PACKAGES+=(libslurm-dev)
# tests/cleanroot.sh: a bookworm minbase root, cached as a zstd tarball.
BUILD_PACKAGES+=(debootstrap debian-archive-keyring zstd)

install_build_deps() {
	[[ $(id -u) == 0 ]] || die "run as root: the tests install packages and mount filesystems"
	command -v cargo >/dev/null || [[ -x $HOME/.cargo/bin/cargo ]] ||
		die "no cargo: install a Rust toolchain (1.88 or newer, e.g. with rustup) first"
	export PATH=$HOME/.cargo/bin:$PATH
	local p missing=()
	for p in "${BUILD_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	# The Debian package is built with cargo-deb 3.8 (tools/dist/build-deb).
	if ! cargo deb --version 2>/dev/null | grep -q '^cargo-deb 3\.8\.'; then
		cargo install cargo-deb --locked --version '~3.8' || die "cargo install cargo-deb failed"
	fi
	((${#missing[@]})) || return 0
	echo "installing: ${missing[*]}"
	apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
		die "apt-get install ${missing[*]} failed"
}

# Everything the guest and the tests use: release shim and CLI, the debug
# build the host tests preload, the C programs, the Slurm SPANK plugin, the
# Rust example for the guest.
build_all() {
	cargo build --workspace --release &&
		cargo build --workspace &&
		make -s -C tests/c &&
		make -s -C tools/dist/spank &&
		bash shim/examples/build-guest.sh &&
		bash shim/tests/build-guest.sh
}
