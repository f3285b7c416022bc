#!/bin/bash
# Issue 15, a distributed job: Open MPI (Debian 12's 4.1.4) running 2 ranks
# over UCX (1.13.1) on Soft-RoCE (rxe0), daxguard preloaded with
# `mpirun -x LD_PRELOAD -x DAXGUARD_MODE`.
#
# First UCX itself, with its own tools: ucx_info sees rxe0 as a memory
# domain with rc_verbs and ud_verbs; ucx_perftest moves data over rc_verbs.
# UCX's ud_verbs (which UCP needs to wire up rc_verbs) drops every packet on
# rxe unless UCX_UD_VERBS_ETH_DGID_CHECK=n: before 1.19 UCX takes the RoCE
# packet type from the completion's SL, a Mellanox convention rxe does not
# follow, reads an IPv4 header as if it were a GRH and drops what it thinks
# is addressed elsewhere (docs/testing.md). Shown failing, then working.
#
# Then tests/c/mpiwin (MPI_Win_create, MPI_Put/MPI_Get, osc ucx):
# anonymous memory moves the data under the preload; an fs-DAX window is
# refused by the kernel alone (UCX's ibv_reg_mr error) and, under the
# preload, by daxguard first, naming each rank's file and rank, before UCX's error;
# where rxe has on-demand paging (Linux 6.18), DAXGUARD_MODE=odp makes the
# fs-DAX window work, the data checked in the files.
#   tests/guest/run tests/scenarios/mpi.sh                 (6.12)
#   tests/guest/run --kernel 6.18 tests/scenarios/mpi.sh   (and odp)
# guest-layer: mpi
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
LIB=${DAXGUARD_LIB:-/opt/daxguard/lib/libdaxguard.so}
require_file "$LIB" "cargo build --release"
require_file "$BIN/mpiwin" "make -C tests/c (needs libopenmpi-dev)"
command -v mpirun >/dev/null || fail "no mpirun: the mpi layer is missing (# guest-layer: mpi)"
W=$(mktemp -d /tmp/mpi.XXXXXX)
TIMES=()

# Runs CMD with output (stdout and stderr merged) in $W/NAME.out, echoed
# with a margin; sets RC and OUT, records the time taken.
run() { # name cmd...
	local name=$1 t0=$SECONDS
	shift
	RC=0
	timeout -k 5 180 "$@" >"$W/$name.out" 2>&1 || RC=$?
	TIMES+=("$(printf '%-22s %4d s' "$name" $((SECONDS - t0)))")
	LAP=$SECONDS
	OUT=$(cat "$W/$name.out")
	echo "$name: exit $RC"
	sed 's/^/  | /' "$W/$name.out" | head -n 40
}

# The UCX settings of every run below: rxe0 only, and the UD fix.
UCX_ENV=(UCX_NET_DEVICES=rxe0:1 UCX_UD_VERBS_ETH_DGID_CHECK=n)

# Where rxe has on-demand paging (6.18) this scenario is the odp run: what
# does not depend on the kernel (UCX's UD defect, the kernel-only refusal)
# is left to the 6.12 run.
ODP=0
ibv_devinfo -v -d "$RDMA_DEV" | grep -A8 'rc_odp_caps:' | grep -q SUPPORT_WRITE && ODP=1

# Records the seconds since the last call under NAME.
LAP=$SECONDS
lap() { # name
	TIMES+=("$(printf '%-22s %4d s' "$1" $((SECONDS - LAP)))")
	LAP=$SECONDS
}

section "UCX over $RDMA_DEV, with UCX's own tools"
run ucx_info env UCX_NET_DEVICES=rxe0:1 ucx_info -d
assert_contains "$OUT" "# Memory domain: $RDMA_DEV" "ucx_info -d"
for tl in rc_verbs ud_verbs; do
	grep -A1 "Transport: $tl\$" "$W/ucx_info.out" | grep -q "Device: $RDMA_DEV:1" ||
		fail "ucx_info -d: no $tl on $RDMA_DEV:1"
	ok "ucx_info -d: $tl on $RDMA_DEV:1"
done

# UCT level: RDMA WRITEs (put zcopy) over rc_verbs between two processes.
PAIR_TIMEOUT=60 run_pair 13337 env "${UCX_ENV[@]}" ucx_perftest -p 13337 -- \
	env "${UCX_ENV[@]}" ucx_perftest 127.0.0.1 -p 13337 -d "$RDMA_DEV:1" -x rc_verbs -t put_bw -D zcopy -s 65536 -n 50
sed 's/^/  | /' "$PAIR_CLIENT_OUT" | tail -n 2
assert_eq "0 0" "$PAIR_SERVER_RC $PAIR_CLIENT_RC" "ucx_perftest put_bw over rc_verbs"

lap ucx_info+put_bw

# ud_verbs as UCX ships it: every packet dropped, the peer times out (3 s
# here instead of 30 s) and that side aborts; the other would wait for it
# forever, and is killed at 12 s. With the DGID check off, the same passes.
if ((!ODP)); then
	PAIR_TIMEOUT=12 run_pair 13338 env UCX_UD_VERBS_TIMEOUT=3s ucx_perftest -p 13338 -- \
		env UCX_UD_VERBS_TIMEOUT=3s ucx_perftest 127.0.0.1 -p 13338 -d "$RDMA_DEV:1" -x ud_verbs -t am_lat -n 10
	grep -h 'Fatal' "$PAIR_SERVER_OUT" "$PAIR_CLIENT_OUT" | sed 's/^/  | /' | head -n 2
	[[ $PAIR_SERVER_RC != 0 || $PAIR_CLIENT_RC != 0 ]] || fail "ud_verbs on rxe passed with the DGID check on: is UCX 1.19+ here?"
	assert_contains "$(cat "$PAIR_SERVER_OUT" "$PAIR_CLIENT_OUT")" "unhandled timeout error" "ud_verbs as shipped: UCX's own timeout"
	lap ud_verbs_as_shipped
fi
PAIR_TIMEOUT=60 run_pair 13339 env "${UCX_ENV[@]}" ucx_perftest -p 13339 -- \
	env "${UCX_ENV[@]}" ucx_perftest 127.0.0.1 -p 13339 -d "$RDMA_DEV:1" -x ud_verbs -t am_lat -n 10
assert_eq "0 0" "$PAIR_SERVER_RC $PAIR_CLIENT_RC" "ucx_perftest am_lat over ud_verbs, UCX_UD_VERBS_ETH_DGID_CHECK=n"

# UCP (what Open MPI uses): RMA over rc_verbs, wired up over ud_verbs.
PAIR_TIMEOUT=60 run_pair 13340 env "${UCX_ENV[@]}" ucx_perftest -p 13340 -- \
	env "${UCX_ENV[@]}" ucx_perftest 127.0.0.1 -p 13340 -t ucp_put_bw -s 65536 -n 50
sed 's/^/  | /' "$PAIR_CLIENT_OUT" | tail -n 1
assert_eq "0 0" "$PAIR_SERVER_RC $PAIR_CLIENT_RC" "ucx_perftest ucp_put_bw on $RDMA_DEV"
lap ud+ucp_put_bw

# 2 ranks, pml and osc ucx, on rxe0 only; lines tagged [1,RANK]<stdout> or
# <stderr>. UCX logs to stdout unless told: UCX_LOG_FILE=stderr puts its
# errors on the stream daxguard writes to, so a rank's lines keep their
# order (mpirun forwards each stream of each rank on its own).
MPIRUN=(mpirun --allow-run-as-root -np 2 --tag-output
	--mca pml ucx --mca osc ucx -x UCX_NET_DEVICES=rxe0:1 -x UCX_UD_VERBS_ETH_DGID_CHECK=n
	-x UCX_LOG_FILE=stderr)

# The lines rank R printed on STREAM (stdout, stderr; default both), without
# the tag. mpirun can put one rank's line right after another's unfinished
# one (a crashing rank writes its backtrace in pieces): a tag in the middle
# of a line starts a new one.
rank_lines() { # file rank [stream]
	sed 's/\(.\)\(\[1,[0-9]*\]<std[a-z]*>:\)/\1\n\2/g' "$1" |
		sed -n "s/^\[1,$2\]<${3:-std[a-z]*}>://p"
}

# Line number, among rank R's stderr lines, of the first containing TEXT, or 0.
first_line() { # file rank text
	rank_lines "$1" "$2" stderr | grep -nF -- "$3" | head -n1 | cut -d: -f1 | grep . || echo 0
}

section "an anonymous window under daxguard: MPI_Put/MPI_Get move the data"
export LD_PRELOAD=$LIB DAXGUARD_MODE=enforce
run anon "${MPIRUN[@]}" -x LD_PRELOAD -x DAXGUARD_MODE mpiwin anon
unset LD_PRELOAD DAXGUARD_MODE
assert_eq 0 "$RC" "mpirun mpiwin anon exit status"
for r in 0 1; do
	assert_contains "$(rank_lines "$W/anon.out" $r)" "rank $r: window over anonymous memory: put/get of 1048576 bytes ok" "rank $r"
done
assert_not_contains "$OUT" "daxguard:" "anonymous memory: daxguard says nothing"

if ((!ODP)); then
	section "an fs-DAX window without daxguard: the kernel refuses, UCX reports"
	run oracle "${MPIRUN[@]}" mpiwin fsdax
	assert_ne 0 "$RC" "mpirun mpiwin fsdax exit status"
	assert_not_contains "$OUT" "daxguard:" "no daxguard here"
	for r in 0 1; do
		lines=$(rank_lines "$W/oracle.out" $r)
		assert_contains "$lines" "UCX  ERROR ibv_reg_mr(" "rank $r: UCX's registration error"
		assert_contains "$lines" "failed: Operation not supported" "rank $r: the kernel's EOPNOTSUPP"
		assert_contains "$lines" "]=$RDMA_DEV: Input/output error" "rank $r: UCP's error for $RDMA_DEV"
	done
	# What comes after UCX's lines is Open MPI's: 4.1.x's osc ucx, on a failed
	# ucp_mem_map, calls ucp_mem_unmap on the handle it never got (NULL) and
	# the rank dies with SIGSEGV before MPI_Win_create can return (fixed in
	# 5.0, which returns the error). Said, not asserted either way.
	if grep -q 'MPI_Win_create over .* failed' "$W/oracle.out"; then
		echo "(MPI_Win_create returned the error: this Open MPI's osc ucx handles it)"
	elif grep -q 'Segmentation fault' "$W/oracle.out"; then
		echo "(the ranks died with SIGSEGV in osc ucx's error path: Open MPI 4.1.x, see docs/testing.md)"
	fi
fi

section "an fs-DAX window under daxguard (enforce): refused first, naming each rank's file"
export LD_PRELOAD=$LIB DAXGUARD_MODE=enforce
run enforce "${MPIRUN[@]}" -x LD_PRELOAD -x DAXGUARD_MODE mpiwin fsdax
unset LD_PRELOAD DAXGUARD_MODE
assert_ne 0 "$RC" "mpirun mpiwin fsdax exit status"
for r in 0 1; do
	lines=$(rank_lines "$W/enforce.out" $r)
	refusal=$(grep -m1 'daxguard: refused' <<<"$lines")
	assert_contains "$refusal" "daxguard: refused ibv_reg_mr" "rank $r: daxguard's refusal"
	assert_contains "$refusal" "/mnt/pmem/mpiwin.rank$r is on filesystem-DAX" "rank $r: names its own file"
	assert_contains "$refusal" "rank $r" "rank $r: names its rank"
	d=$(first_line "$W/enforce.out" $r "daxguard: refused")
	u=$(first_line "$W/enforce.out" $r "UCX  ERROR ibv_reg_mr(")
	((d > 0 && u > 0 && d < u)) || fail "rank $r: daxguard's line ($d) is not before UCX's ($u)"
	ok "rank $r: daxguard's line ($d) comes before UCX's ($u)"
	assert_contains "$lines" "failed: Operation not supported" "rank $r: UCX sees the kernel's errno"
done

if ((ODP)); then
	section "DAXGUARD_MODE=odp on $KERNEL_VERSION: the fs-DAX window works"
	export LD_PRELOAD=$LIB DAXGUARD_MODE=odp
	run odp "${MPIRUN[@]}" -x LD_PRELOAD -x DAXGUARD_MODE mpiwin fsdax
	unset LD_PRELOAD DAXGUARD_MODE
	assert_eq 0 "$RC" "mpirun mpiwin fsdax (odp) exit status"
	for r in 0 1; do
		lines=$(rank_lines "$W/odp.out" $r)
		assert_contains "$lines" "registering it with IBV_ACCESS_ON_DEMAND" "rank $r: daxguard rewrote it to ODP"
		assert_contains "$lines" "rank $r: window over /mnt/pmem/mpiwin.rank$r: put/get of 1048576 bytes ok, file ok" "rank $r: the data, in the window and the file"
	done
	assert_not_contains "$OUT" "UCX  ERROR" "odp: no UCX error"
else
	echo
	echo "(rxe on $KERNEL_VERSION has no on-demand paging: the odp section runs on 6.18, and the"
	echo " sections that do not depend on the kernel only here)"
fi

section "times"
printf '%s\n' "${TIMES[@]}"
assert_kernel_clean
scenario_done
