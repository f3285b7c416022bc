#!/bin/bash
# Registration latency on rxe0 with and without the shim, in a process with
# 10k VMAs: ibv_reg_mr + ibv_dereg_mr of 4 KiB and 2 MiB anonymous regions
# (target/c/regbench). Rounds alternate without/with LD_PRELOAD so drift in
# the TCG guest hits both sides alike; the ratio (with / without) of the
# medians is printed per round and overall (median of the rounds). Then the
# same number of paired rounds: one process per round that times both sides
# itself, interleaved (regbench --paired), because the noise between two
# processes (+-2x) is larger than the effect.
#   tests/guest/run --kernel 6.12 tests/bench/guest-reg.sh [ROUNDS [ITERS [LOOKUP]]]
# LOOKUP, if given, is the shim's DAXGUARD_LOOKUP (e.g. events on 6.1).
# A benchmark, not a test: it asserts only that both sides ran and that the
# shim really saw every registration (DAXGUARD_STATS), never a timing.
set -euo pipefail
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

rounds=${1:-5}
iters=${2:-200}
lookup=()
[[ -z ${3:-} ]] || lookup=("DAXGUARD_LOOKUP=$3")
vmas=10000
shim=/opt/daxguard/lib/libdaxguard.so
[[ -x /opt/daxguard/bin/regbench ]] || skip "regbench not built (make -C tests/c)"
[[ -f $shim ]] || skip "$shim not built (cargo build --release -p daxguard)"

section "setup"
echo "kernel $KERNEL_VERSION, device $RDMA_DEV, $(nproc) CPU(s), $rounds rounds of $iters iterations, $vmas VMAs"
out=$(mktemp -d /tmp/regbench.XXXXXX)
# The lookup path the shim takes here, as doctor reports it with the same settings.
env "${lookup[@]}" daxguard doctor 2>&1 | grep -i '^ *lookup' || true

# One regbench run; sets MEDIANS to "<4k-median> <2m-median>" from its REGBENCH lines.
bench() { # label [env...]
	local label=$1 log=$out/$1
	shift
	env "$@" regbench --device "$RDMA_DEV" --vmas "$vmas" --iters "$iters" 4K 2M >"$log.out" 2>"$log.err" ||
		fail "$label: regbench exited $? ($(tail -n 3 "$log.err"))"
	MEDIANS=$(awk '/^REGBENCH/ { for (i = 2; i <= NF; i++) if ($i ~ /^median_ns=/) { sub(/.*=/, "", $i); printf "%s ", $i } }' "$log.out")
	MEDIANS=${MEDIANS% }
	[[ $MEDIANS =~ ^[0-9]+\ [0-9]+$ ]] || fail "$label: no REGBENCH lines: $(cat "$log.out")"
	grep -q "^REGBENCH vmas=\([0-9]\{5,\}\)" "$log.out" || fail "$label: fewer than 10000 VMAs: $(cat "$log.out")"
}

section "rounds (median ns per reg+dereg)"
printf '%-6s %12s %12s %8s %12s %12s %8s\n' round "4k-without" "4k-with" ratio "2m-without" "2m-with" ratio
r4=() r2=()
for ((r = 1; r <= rounds; r++)); do
	bench "without-$r"
	read -r a4 a2 <<<"$MEDIANS"
	bench "with-$r" LD_PRELOAD="$shim" DAXGUARD_STATS=1 "${lookup[@]}"
	read -r b4 b2 <<<"$MEDIANS"
	# Every timed and warm-up registration (and the cold first and second) went through the shim, none refused.
	seen=$(sed -n 's/^daxguard: stats: \([0-9]*\) registrations seen, 0 refused.*/\1/p' "$out/with-$r.err")
	assert_eq $((2 * (iters + 5) + 2)) "${seen:-none}" "round $r: registrations the shim saw"
	q4=$(awk -v a="$a4" -v b="$b4" 'BEGIN { printf "%.3f", b / a }')
	q2=$(awk -v a="$a2" -v b="$b2" 'BEGIN { printf "%.3f", b / a }')
	r4+=("$q4") r2+=("$q2")
	printf '%-6s %12s %12s %8s %12s %12s %8s\n' "$r" "$a4" "$b4" "$q4" "$a2" "$b2" "$q2"
done

# One paired run; sets PAIRED to "<4k-without> <4k-with> <4k-ratio> <2m-without> <2m-with> <2m-ratio>".
paired() { # label iters [env...]
	local label=$1 log=$out/$1 n=$2
	shift 2
	env LD_PRELOAD="$shim" "${lookup[@]}" "$@" regbench --paired --device "$RDMA_DEV" --vmas "$vmas" --iters "$n" 4K 2M \
		>"$log.out" 2>"$log.err" || fail "$label: regbench --paired exited $? ($(tail -n 3 "$log.err"))"
	PAIRED=$(awk '/^REGBENCH-PAIRED/ {
		for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
		printf "%s %s %s ", v["without_median_ns"], v["with_median_ns"], v["ratio"] }' "$log.out")
	PAIRED=${PAIRED% }
	[[ $PAIRED =~ ^([0-9]+\ [0-9]+\ [0-9.]+\ ?){2}$ ]] || fail "$label: no REGBENCH-PAIRED lines: $(cat "$log.out")"
	grep -q "^REGBENCH-PAIRED vmas=\([0-9]\{5,\}\)" "$log.out" || fail "$label: fewer than 10000 VMAs: $(cat "$log.out")"
}

section "cold: the first and second registration of each process, and one full maps read (ns)"
# With the shim: its set-up and first lookup (on a kernel without
# PROCMAP_QUERY, a walk of the maps text up to the range). From the
# separate-process rounds, before the paired ones.
for f in "$out"/without-*.out "$out"/with-*.out; do
	echo "$(basename "$f" .out) $(grep '^REGBENCH-COLD' "$f")"
done

section "paired rounds (median ns per reg+dereg, both sides in one process)"
printf '%-6s %12s %12s %8s %12s %12s %8s\n' round "4k-without" "4k-with" ratio "2m-without" "2m-with" ratio
p4=() p2=()
# The shim's default settings: DAXGUARD_STATS would add two clock reads per call.
for ((r = 1; r <= rounds; r++)); do
	paired "paired-$r" "$iters"
	read -r a4 b4 q4 a2 b2 q2 <<<"$PAIRED"
	p4+=("$q4") p2+=("$q2")
	printf '%-6s %12s %12s %8s %12s %12s %8s\n' "$r" "$a4" "$b4" "$q4" "$a2" "$b2" "$q2"
done

# Untimed proof that the paired sides are what they say: the shim saw exactly
# the "with" calls (timed and warm-up, both sizes), none of the "without" ones.
paired paired-proof 20 DAXGUARD_STATS=1
seen=$(sed -n 's/^daxguard: stats: \([0-9]*\) registrations seen, 0 refused.*/\1/p' "$out/paired-proof.err")
assert_eq $((2 * (20 + 5) + 2)) "${seen:-none}" "paired: registrations the shim saw"


section "result"
# Which lookup the shim uses here: PROCMAP_QUERY from 6.11, the mmap-events map
# before (maps text where perf is refused); LOOKUP, if given, is on the line.
echo "RESULT kernel=$KERNEL_VERSION ${lookup[*]} vmas=$vmas iters=$iters rounds=$rounds ratio_4k=$(median "${r4[@]}") ratio_2m=$(median "${r2[@]}")"
echo "RESULT-PAIRED kernel=$KERNEL_VERSION ${lookup[*]} vmas=$vmas iters=$iters rounds=$rounds ratio_4k=$(median "${p4[@]}") ratio_2m=$(median "${p2[@]}")"
ok "both sides ran $rounds rounds, separately and paired"
scenario_done
