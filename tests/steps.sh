# shellcheck shell=bash
# Shared by tests/all and tests/demo: install, build, and count steps.

STEP_PASSED=0
STEP_FAILED=0
FAILED_STEPS=()

die() {
	echo "daxguard tests: $*" >&2
	exit 2
}

# Runs one step, prints its time and result, and counts it.
step() { # name command...
	local name=$1 start=$SECONDS rc=0
	shift
	printf '\n##### %s\n' "$name"
	"$@" || rc=$?
	if ((rc == 0)); then
		STEP_PASSED=$((STEP_PASSED + 1))
		printf '##### ok: %s (%d s)\n' "$name" $((SECONDS - start))
	else
		STEP_FAILED=$((STEP_FAILED + 1))
		FAILED_STEPS+=("$name (exit $rc)")
		printf '##### FAILED: %s (exit %d, %d s)\n' "$name" "$rc" $((SECONDS - start))
	fi
}

finish() {
	echo
	((STEP_FAILED == 0)) || printf 'failed: %s\n' "${FAILED_STEPS[@]}"
	echo "steps: $STEP_PASSED passed, $STEP_FAILED failed"
	((STEP_FAILED == 0))
}

# What building and the host tests need, beyond the Rust toolchain.
BUILD_PACKAGES=(build-essential pkg-config cmake clang libclang-dev libibverbs-dev ibverbs-providers
	binutils strace util-linux python3)

install_build_deps() {
	[[ $(id -u) == 0 ]] || die "run as root: the tests install packages and mount filesystems"
	command -v cargo >/dev/null || [[ -x $HOME/.cargo/bin/cargo ]] ||
		die "no cargo: install a Rust toolchain (1.85 or newer, e.g. with rustup) first"
	export PATH=$HOME/.cargo/bin:$PATH
	local p missing=()
	for p in "${BUILD_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	echo "installing: ${missing[*]}"
	apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" ||
		die "apt-get install ${missing[*]} failed"
}

# Everything the guest and the tests use: release shim and CLI, the debug
# build the host tests preload, the C programs, the Rust example for the guest.
build_all() {
	cargo build --workspace --release &&
		cargo build --workspace &&
		make -s -C tests/c &&
		bash shim/examples/build-guest.sh
}
