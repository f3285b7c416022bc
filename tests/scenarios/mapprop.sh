#!/bin/bash
# The mmap-events map (docs/design.md) on a kernel without PROCMAP_QUERY, the
# kernels it is for: its property test (random layouts with holes, then raw
# SYS_mmap MAP_FIXED, munmap, mremap and mprotect calls; after each, the map
# against a fresh maps read page by page, and judge on the map against maps
# text) and its integration tests, as root (perf allowed). The binaries come
# from shim/tests/build-guest.sh (tests/all's build step).
#   tests/guest/run --kernel 6.1 tests/scenarios/mapprop.sh [RUNS]
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
runs=${1:-3}
for t in proptest_layouts_test mmap_events_test; do
	[[ -x $BIN/$t ]] || fail "$BIN/$t missing (shim/tests/build-guest.sh)"
done
cd /tmp || fail "no /tmp"

section "the map against fresh maps reads: $runs run(s) of 128 cases"
rm -f /tmp/lost.log
for ((r = 1; r <= runs; r++)); do
	# DAXGUARD_TEST_PERF: the map must be available here; a skip would be a failure.
	out=$(DAXGUARD_TEST_PERF=1 DAXGUARD_PROPTEST_LOST_LOG=/tmp/lost.log \
		"$BIN/proptest_layouts_test" mmap_events_layouts --exact 2>&1) ||
		fail "run $r: $(grep -E 'panicked|minimal failing|Test failed' <<<"$out" | head -n 5)"
	assert_contains "$out" "test result: ok. 1 passed" "run $r: mmap_events_layouts"
done
# Each case is a child process; a line per child says how many of its rings a
# raw call mapped over or unmapped (each detected, the map set up afresh).
children=$(wc -l </tmp/lost.log)
lost=$(awk '{ n += $1 } END { print n + 0 }' /tmp/lost.log)
((children >= 128 * runs)) || fail "only $children children reported (want $((128 * runs)))"
ok "$children children compared the map with maps text after every raw call; $lost ring(s) lost and set up again"

section "integration tests of the map"
out=$(DAXGUARD_TEST_PERF=1 "$BIN/mmap_events_test" --include-ignored --test-threads 1 --nocapture 2>&1) ||
	fail "mmap_events: $(grep -E 'panicked|FAILED' <<<"$out" | head -n 5)"
assert_contains "$out" "test result: ok." "mmap_events tests"
assert_not_contains "$out" "skipped" "no test skipped"
grep -o "FLAT.*" <<<"$out" || true # judge on the map, median ns, at 41 / 10k / 60k VMAs (not asserted)

assert_kernel_clean
scenario_done
