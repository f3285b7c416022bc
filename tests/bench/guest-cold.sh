#!/bin/bash
# The first registration of a process, split by what it runs: raw (no shim),
# the shim with DAXGUARD_MODE=off (its settings and symbol lookup, no
# lookup of the range), and the shim as it ships (auto). One regbench
# process per sample (--iters 3, 10k VMAs, 4 KiB), the three interleaved in
# each round so drift in the TCG guest hits them alike. Prints each
# process's first registration and its ratio to one full maps read of the
# same process (REGBENCH-COLD), then min / median / max per variant.
#   tests/guest/run --kernel 6.1 tests/bench/guest-cold.sh [ROUNDS]
# A benchmark, not a test: it asserts only that every process ran and that
# the shim (auto) saw its registrations and refused none, never a timing.
set -euo pipefail
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

rounds=${1:-12}
shim=/opt/daxguard/lib/libdaxguard.so
[[ -x /opt/daxguard/bin/regbench ]] || skip "regbench not built (make -C tests/c)"
[[ -f $shim ]] || skip "$shim not built (cargo build --release -p daxguard)"
out=$(mktemp -d /tmp/guest-cold.XXXXXX)

section "setup"
echo "kernel $KERNEL_VERSION, device $RDMA_DEV, $(nproc) CPU(s), $rounds rounds, 10000 VMAs"
daxguard doctor 2>&1 | grep -i '^ *lookup' || true

section "first registration (ms) and first / one full maps read, per process"
printf '%-6s %-5s %10s %8s\n' round shim first ratio
for ((r = 1; r <= rounds; r++)); do
	for v in raw off auto; do
		case $v in
		raw) e=() ;;
		off) e=(LD_PRELOAD="$shim" DAXGUARD_MODE=off) ;;
		auto) e=(LD_PRELOAD="$shim" DAXGUARD_STATS=1) ;;
		esac
		log=$out/$v-$r
		env "${e[@]}" regbench --device "$RDMA_DEV" --vmas 10000 --iters 3 4K >"$log.out" 2>"$log.err" ||
			fail "$v-$r: regbench exited $? ($(tail -n 3 "$log.err"))"
		line=$(grep '^REGBENCH-COLD' "$log.out") || fail "$v-$r: no REGBENCH-COLD line: $(cat "$log.out")"
		if [[ $v == auto ]]; then
			grep -q '^daxguard: stats: [1-9][0-9]* registrations seen, 0 refused' "$log.err" ||
				fail "$v-$r: the shim did not see the registrations: $(cat "$log.err")"
		fi
		awk -v r="$r" -v v="$v" '{
			for (i = 2; i <= NF; i++) { split($i, kv, "="); c[kv[1]] = kv[2] }
			printf "%-6s %-5s %10.2f %8.2f\n", r, v, c["first_ns"] / 1e6, c["first_ns"] / c["maps_read_ns"] }' <<<"$line" |
			tee -a "$out/table"
	done
done

section "result"
# Per variant: min / median / max of the column given.
spread() { # variant column
	local xs
	xs=$(awk -v v="$1" -v c="$2" '$2 == v { print $c }' "$out/table" | sort -g)
	echo "$(head -n 1 <<<"$xs")/$(median <<<"$xs")/$(tail -n 1 <<<"$xs")"
}
for v in raw off auto; do
	echo "RESULT-COLD kernel=$KERNEL_VERSION shim=$v processes=$rounds first_ms=$(spread "$v" 3) ratio=$(spread "$v" 4)"
done
ok "every process ran, and the shim saw its registrations"
scenario_done
