#!/bin/bash
# What `daxguard watch` adds to a successful pin_user_pages_fast(): the
# fexit trampoline and the first test of its BPF program. Two loops, each
# one process that runs its rounds while this script attaches watch for
# half of them (ABBA order, so drift in the TCG guest hits both sides):
#   - a 4 KiB O_DIRECT read of /dev/ram0 (tests/c/directread): the block
#     layer pins the buffer with pin_user_pages_fast() from 6.3 on (6.1
#     takes plain references with get_user_pages_fast(): nothing to hook);
#   - ibv_reg_mr + ibv_dereg_mr of 4 KiB of anonymous memory on rxe0
#     (tests/c/regbench --step): ib_umem_get()'s pin_user_pages_fast().
# Then an untimed proof that the hook ran on every read (--count-calls).
#   tests/guest/run --kernel 6.12 tests/bench/guest-watch.sh [ROUNDS [READS [REGS]]]
# A benchmark, not a test: it asserts that both sides ran, never a timing.
set -euo pipefail
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

rounds=${1:-6}
reads=${2:-50000}
regs=${3:-2000}
for f in daxguard directread regbench; do
	[[ -x /opt/daxguard/bin/$f ]] || skip "$f not built (cargo build --release; make -C tests/c)"
done
W=$(mktemp -d /tmp/watchbench.XXXXXX)

section "setup"
echo "kernel $KERNEL_VERSION, $(nproc) CPU(s), $rounds rounds with and $rounds without watch;" \
	"$reads reads of 4 KiB (O_DIRECT, /dev/ram0), $regs ibv_reg_mr+ibv_dereg_mr of 4 KiB ($RDMA_DEV) per round"

WATCH_PID=
watch_on() {
	daxguard watch --json >"$W/watch.out" 2>"$W/watch.err" &
	WATCH_PID=$!
	local n=300
	until grep -q 'watching long-term pins' "$W/watch.err"; do
		kill -0 "$WATCH_PID" 2>/dev/null || fail "watch exited: $(cat "$W/watch.err")"
		((n-- > 0)) || fail "watch not attached after 30 s"
		sleep 0.1
	done
}
watch_off() {
	kill -INT "$WATCH_PID"
	wait "$WATCH_PID" || fail "watch exited $?"
	assert_contains "$(tail -n1 "$W/watch.out")" '"refusals":0,"dropped":0' "watch saw no refusal while timing"
}

# Drives one --step process through 2 x rounds steps in ABBA order: writes
# the label to its stdin, waits for its result line (PATTERN, one more each step).
drive() { # name pattern command...
	local name=$1 pattern=$2 r k label n
	shift 2
	mkfifo "$W/$name.ctl"
	"$@" <"$W/$name.ctl" >"$W/$name.out" 2>"$W/$name.err" &
	local pid=$!
	exec 3>"$W/$name.ctl"
	for ((r = 1; r <= rounds; r++)); do
		for k in 0 1; do
			# Odd rounds: without, then with; even rounds: with, then without.
			if (((r + k) % 2 == 0)); then label=with; else label=without; fi
			[[ $label == with ]] && watch_on
			n=$(grep -c "$pattern" "$W/$name.out" || true)
			echo "$label" >&3
			until (($(grep -c "$pattern" "$W/$name.out" || true) > n)); do
				kill -0 "$pid" 2>/dev/null || fail "$name exited: $(cat "$W/$name.err")"
				sleep 0.2
			done
			[[ $label == with ]] && watch_off
			echo "$label" >>"$W/$name.labels"
		done
	done
	exec 3>&-
	wait "$pid" || fail "$name exited $?"
}

# Pairs each round's with/without medians: prints "round without with ratio" lines.
pairs() { # name
	# Files, not <(...): the guest has no /dev/fd.
	sed -n 's/.*median_ns=\([0-9]*\).*/\1/p' "$W/$1.out" >"$W/$1.medians"
	paste -d' ' "$W/$1.labels" "$W/$1.medians" |
		awk '{ v[$1] = $2 } NR % 2 == 0 { printf "%d %d %d %.4f\n", NR / 2, v["without"], v["with"], v["with"] / v["without"] }'
}

section "O_DIRECT 4 KiB reads of /dev/ram0 (median ns per read)"
drive direct DIRECTREAD directread --device /dev/ram0 --iters "$reads" --rounds $((2 * rounds)) --step
pairs direct | tee "$W/direct.pairs" | awk '{ printf "round %s: without %s ns, with %s ns, ratio %s\n", $1, $2, $3, $4 }'
r_direct=$(awk '{ print $4 }' "$W/direct.pairs" | median)

section "ibv_reg_mr + ibv_dereg_mr of 4 KiB anonymous memory on $RDMA_DEV (median ns per pair)"
sizes=()
for ((i = 0; i < 2 * rounds; i++)); do sizes+=(4K); done
drive reg REGBENCH regbench --step --device "$RDMA_DEV" --vmas 0 --iters "$regs" "${sizes[@]}"
pairs reg | tee "$W/reg.pairs" | awk '{ printf "round %s: without %s ns, with %s ns, ratio %s\n", $1, $2, $3, $4 }'
r_reg=$(awk '{ print $4 }' "$W/reg.pairs" | median)

section "proof: watch's program ran on each pin (--count-calls, untimed)"
daxguard watch --json --count-calls >"$W/calls.out" 2>"$W/calls.err" &
cp=$!
until grep -q 'watching long-term pins' "$W/calls.err"; do sleep 0.1; done
directread --device /dev/ram0 --iters 1000 >/dev/null
regbench --device "$RDMA_DEV" --vmas 0 --iters 100 4K >/dev/null
kill -INT "$cp"
wait "$cp"
calls=$(sed -n 's/.*"calls":\([0-9]*\).*/\1/p' "$W/calls.out")
echo "hooked calls during 1,100 reads and 105 registrations: $calls"
# 6.3+: every O_DIRECT read pins; 6.1: only the registrations do.
((calls >= 105)) || fail "the hook ran only $calls times"
ok "the hook ran $calls times"

section "result"
echo "RESULT kernel=$KERNEL_VERSION rounds=$rounds reads=$reads regs=$regs ratio_direct=$r_direct ratio_reg=$r_reg calls=$calls"
scenario_done
