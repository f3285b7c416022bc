#!/bin/bash
# Builds the `guarded` example (release) and puts it where the guest testbed
# picks up extra binaries: target/guest-extra/guarded. The testbed copies the
# libraries ldd lists with it; the binary needs only the system
# libibverbs.so.1 (ibverbs-sys builds its vendored rdma-core for bindgen only).
#   shim/examples/build-guest.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
cd "$repo"
cargo build --release -p daxguard --example guarded
bin=$target/release/examples/guarded
# Guard-by-linking is in place only if ibv_reg_mr is defined in the binary.
# grep without -q reads all of nm's output: no SIGPIPE to trip pipefail.
if ! nm "$bin" | grep ' T ibv_reg_mr$' >/dev/null; then
	echo "build-guest: $bin does not define ibv_reg_mr (interpose feature off?)" >&2
	exit 1
fi
mkdir -p "$repo/target/guest-extra"
install -m 755 "$bin" "$repo/target/guest-extra/guarded"
echo "build-guest: $repo/target/guest-extra/guarded"
