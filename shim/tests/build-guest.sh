#!/bin/bash
# Builds the test binaries the guest runs on kernels this host does not have
# (tests/scenarios/mapprop.sh: the mmap-events map's property test and its
# integration tests on 6.1, without PROCMAP_QUERY) and puts them where the
# guest testbed picks up extra binaries: target/guest-extra/. Release builds:
# the guest emulates every instruction.
#   shim/tests/build-guest.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$repo"
mkdir -p target/guest-extra
# cargo names each test binary by a hash: ask it which file it built.
cargo test --release -p daxguard --all-features --no-run --test proptest_layouts --test mmap_events \
	--message-format=json-render-diagnostics |
	sed -n 's/.*"name":"\(proptest_layouts\|mmap_events\)".*"executable":"\([^"]*\)".*/\1 \2/p' |
	while read -r name bin; do
		install -m 755 "$bin" "target/guest-extra/${name}_test"
		echo "build-guest: target/guest-extra/${name}_test"
	done
for name in proptest_layouts mmap_events; do
	[[ -x target/guest-extra/${name}_test ]] || {
		echo "build-guest: no $name test binary" >&2
		exit 1
	}
done
