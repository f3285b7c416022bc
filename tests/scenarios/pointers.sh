#!/bin/bash
# Registrations through pointers a program fetched itself: libibverbs loaded
# as NCCL loads it (dlopen RTLD_NOW, every function by dlvsym with NCCL's
# version strings), then ibv_reg_mr_iova2, ibv_reg_mr, ibv_reg_mr_iova, a
# dlsym'd iova2 and ibv_rereg_mr called through the pointers (tests/c/nccl_like).
#
# Without daxguard every fs-DAX registration reaches the provider: rxe logs
# one "err = -95" line each. Under daxguard the pointers are its exports (its
# dlsym/dlvsym wrapper): fs-DAX is refused first, with its message and audit
# record, and no new rxe line appears; anonymous, tmpfs and device-DAX memory
# register and deregister. Also RTLD_DEEPBIND, dlmopen (a second copy, not
# guarded, said once), fork, a thread registering while others dlsym,
# dlclose + dlopen rounds, PR_SET_MDWE (6.3+), and on kernels whose rxe has
# ODP (6.18) DAXGUARD_MODE=odp through the pointers with an RDMA WRITE
# verified in the file.
#   tests/guest/run --kernel 6.12 tests/scenarios/pointers.sh
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
SHIM=$DAXGUARD_SO
for f in "$SHIM" "$BIN/nccl_like" "$BIN/odpwrite"; do
	require_file "$f" "cargo build --release -p daxguard; make -C tests/c"
done
W=$(mktemp -d /tmp/pointers.XXXXXX)
LEN=2M
REGIONS=("dax=file:/mnt/pmem/ptr:$LEN" "tmp=file:$W/tmpfs-file:$LEN" "devdax=devdax:$DEVDAX:$LEN" "anon=anon:$LEN")
NOT_DAX=(tmp devdax anon)
# rxe's line for a failed user MR: 6.12 and 6.18 "rxe_reg_user_mr: returned
# err = -95" (rate-limited: 10 per 5 s), 6.1 "rxe_mr_init_user: Unable to pin
# memory region err = -95".
RXE_ERR='rxe_(reg_user_mr|mr_init_user).*err = -95'

# Runs CMD; stdout in $W/NAME.out (also shown), stderr in $W/NAME.err. Sets RC, OUT, ERR.
run() { # name cmd...
	local name=$1
	shift
	RC=0
	"$@" >"$W/$name.out" 2>"$W/$name.err" || RC=$?
	OUT=$(cat "$W/$name.out") ERR=$(cat "$W/$name.err")
	echo "$name: exit $RC"
	sed 's/^/  | /' "$W/$name.out"
	grep -v '^daxguard: refused ' "$W/$name.err" | sed 's/^/  ! /'
	echo "  ($(grep -c '^daxguard: refused ' "$W/$name.err") 'daxguard: refused' lines on stderr)"
}

# run, under daxguard, with its audit log in $W/NAME.audit.
shim() { # name [VAR=value...] cmd...
	local name=$1
	shift
	run "$name" env LD_PRELOAD="$SHIM" DAXGUARD_LOG="$W/$name.audit" "$@"
}

rxe_lines() { dmesg | grep -cE "$RXE_ERR"; }

# rxe's line is rate-limited on 6.12+: start each counted run in a fresh window.
fresh_window() { sleep 6; }

# The result of STEP on REGION in $OUT: ok or the errno name.
result() { # step region
	awk -v s="$1" -v r="$2" '$1 == "REG" && $2 == s && $3 == r { print $4 }' <<<"$OUT"
}

# Lines of $ERR starting "daxguard: refused ENTRY(" for the fs-DAX file.
refusals() { # entry
	grep -c "^daxguard: refused $1(0x[0-9a-f]*, 2097152): /mnt/pmem/ptr is on filesystem-DAX" <<<"$ERR"
}

assert_registered() { # step what
	local r
	for r in "${NOT_DAX[@]}"; do
		assert_eq ok "$(result "$1" "$r")" "$2: $1 on $r"
	done
}

# Audit records of NAME with "action":"refused" and the file named.
refused_records() { # name
	grep -c '"verdict":"fsdax","reason":"fsdax","file":"/mnt/pmem/ptr".*"action":"refused","errno":95,' "$W/$1.audit"
}

make_file /mnt/pmem/ptr 2
POINTERS=(iova2 reg_mr iova dlsym)

section "1. no daxguard, libibverbs loaded as NCCL does: every fs-DAX registration reaches rxe"
fresh_window
before=$(rxe_lines)
run plain nccl_like --device "$RDMA_DEV" "${REGIONS[@]}" -- "${POINTERS[@]}" rereg
assert_eq 0 "$RC" "nccl_like exit status"
assert_contains "$OUT" "INTERCEPTION no-daxguard" "no daxguard in the process"
assert_contains "$OUT" "SYM ibv_reg_mr_iova2@IBVERBS_1.8 from=libibverbs.so.1" "the iova2 pointer is libibverbs'"
for p in "${POINTERS[@]}"; do
	assert_eq EOPNOTSUPP "$(result "$p" dax)" "no daxguard: $p on fs-DAX (the kernel's answer)"
	assert_registered "$p" "no daxguard"
done
assert_eq 4 $(($(rxe_lines) - before)) "new rxe 'err = -95' lines: one per fs-DAX registration"
echo "rxe says: $(dmesg | grep -E "$RXE_ERR" | tail -n1)"
# rxe has no rereg_mr: the kernel answers before any pin (informational).
declare -A KERNEL_REREG
for r in dax "${NOT_DAX[@]}"; do
	KERNEL_REREG[$r]=$(result rereg "$r")
done
echo "rereg through the pointer, no daxguard: dax=${KERNEL_REREG[dax]} tmp=${KERNEL_REREG[tmp]} devdax=${KERNEL_REREG[devdax]} anon=${KERNEL_REREG[anon]}"

section "2. under daxguard: the fetched pointers are its exports; fs-DAX refused first, rxe never asked"
before=$(rxe_lines)
shim nccl nccl_like --device "$RDMA_DEV" "${REGIONS[@]}" -- "${POINTERS[@]}" rereg
assert_eq 0 "$RC" "nccl_like exit status"
assert_contains "$OUT" "INTERCEPTION plt+dlsym" "daxguard_interception()"
for s in "ibv_reg_mr_iova2@IBVERBS_1.8" "ibv_reg_mr@IBVERBS_1.1" "ibv_reg_mr_iova@IBVERBS_1.7" "ibv_rereg_mr@IBVERBS_1.1" "ibv_reg_mr_iova2 (dlsym)"; do
	assert_contains "$OUT" "SYM $s from=libdaxguard.so" "pointer $s"
done
assert_contains "$OUT" "SYM ibv_reg_mr@IBVERBS_1.0 from=libibverbs.so.1" "the 1.0 ABI is not replaced"
for p in "${POINTERS[@]}" rereg; do
	assert_eq EOPNOTSUPP "$(result "$p" dax)" "$p on fs-DAX"
done
for p in "${POINTERS[@]}"; do
	assert_registered "$p" "daxguard"
done
for r in "${NOT_DAX[@]}"; do
	assert_eq "${KERNEL_REREG[$r]}" "$(result rereg "$r")" "rereg on $r: the kernel's answer, unchanged"
done
assert_eq 2 "$(refusals ibv_reg_mr_iova2)" "refusal lines for ibv_reg_mr_iova2 (dlvsym and dlsym pointers)"
assert_eq 1 "$(refusals ibv_reg_mr)" "refusal lines for ibv_reg_mr"
assert_eq 1 "$(refusals ibv_reg_mr_iova)" "refusal lines for ibv_reg_mr_iova"
assert_eq 1 "$(refusals ibv_rereg_mr)" "refusal lines for ibv_rereg_mr"
assert_contains "$ERR" "(ext4 on /dev/pmem0 at /mnt/pmem, dax=always)" "the mount named"
assert_eq 5 "$(refused_records nccl)" "audit: refused records naming the file"
# 4 pointers x 4 regions, rereg's anonymous page (through iova2) x 4, rereg x 4
assert_eq 24 "$(grep -c . "$W/nccl.audit")" "audit: one record per registration"
assert_eq 0 $(($(rxe_lines) - before)) "new rxe 'err = -95' lines"

section "3. RTLD_DEEPBIND: libibverbs binds its own calls, the fetched pointers are still guarded"
fresh_window
before=$(rxe_lines)
run deep_plain nccl_like --load deepbind --device "$RDMA_DEV" "dax=file:/mnt/pmem/ptr:$LEN" "anon=anon:$LEN" -- iova2 reg_mr dlsym
assert_eq 0 "$RC" "nccl_like --load deepbind exit status, no daxguard"
assert_eq 3 $(($(rxe_lines) - before)) "no daxguard: new rxe lines (each fs-DAX registration)"
before=$(rxe_lines)
shim deep nccl_like --load deepbind --device "$RDMA_DEV" "dax=file:/mnt/pmem/ptr:$LEN" "anon=anon:$LEN" -- iova2 reg_mr dlsym
assert_eq 0 "$RC" "nccl_like --load deepbind exit status"
for p in iova2 reg_mr dlsym; do
	assert_eq EOPNOTSUPP "$(result "$p" dax)" "deepbind: $p on fs-DAX"
	assert_eq ok "$(result "$p" anon)" "deepbind: $p on anonymous memory"
done
assert_eq 3 "$(grep -c '^daxguard: refused ' <<<"$ERR")" "deepbind: refusal lines"
assert_eq 0 $(($(rxe_lines) - before)) "deepbind: new rxe lines"

section "4. dlmopen(LM_ID_NEWLM): a second copy in another namespace is not guarded, and daxguard says so"
# A new namespace opens libc's DT_NEEDED ld-linux-x86-64.so.2 by name from
# the library directories, where a Debian host has it; the guest's base has
# it only at /lib64 (the PT_INTERP path its tools were copied by).
if [[ ! -e /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 ]]; then
	ln -s /lib64/ld-linux-x86-64.so.2 /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 || fail "ld-linux symlink"
fi
fresh_window
before=$(rxe_lines)
shim newlm nccl_like --load dlmopen --device "$RDMA_DEV" "dax=file:/mnt/pmem/ptr:$LEN" "anon=anon:$LEN" -- iova2 reg_mr
assert_eq 0 "$RC" "nccl_like --load dlmopen exit status"
assert_contains "$OUT" "SYM ibv_reg_mr_iova2@IBVERBS_1.8 from=libibverbs.so.1" "the dlmopen copy's own pointer"
assert_contains "$ERR" "is a copy in link-map namespace 1 (dlmopen), not the one daxguard forwards to (ibv_reg_mr_iova2@IBVERBS_1.8): registrations through this pointer are not checked" "said"
assert_eq 1 "$(grep -c 'ibv_reg_mr_iova2 at .* not checked' <<<"$ERR")" "said once for ibv_reg_mr_iova2"
# The copy's libc keeps its own errno: the program sees a failure with errno 0.
assert_eq fail-errno-unset "$(result iova2 dax)" "dlmopen: iova2 on fs-DAX (failed, errno in the copy's libc)"
assert_eq ok "$(result iova2 anon)" "dlmopen: iova2 on anonymous memory"
assert_eq 0 "$(grep -c '^daxguard: refused ' <<<"$ERR")" "dlmopen: no daxguard refusal"
assert_eq 2 $(($(rxe_lines) - before)) "dlmopen: the kernel refused the fs-DAX ones (new rxe lines)"

section "5. fork, a thread registering while three others dlsym, and three dlclose + dlopen rounds"
before=$(rxe_lines)
shim life nccl_like --device "$RDMA_DEV" --iters 100 --rounds 3 "dax=file:/mnt/pmem/ptr:$LEN" "anon=anon:$LEN" -- fork threads reopen
assert_eq 0 "$RC" "nccl_like exit status (no crash)"
assert_eq "EOPNOTSUPP ok" "$(result fork-child dax) $(result fork-child anon)" "registrations in the forked child"
assert_contains "$OUT" "FORK child_exit=0" "forked child"
assert_contains "$OUT" "THREADS regs=100 as_alone=100 other=0" "100 registrations under concurrent dlsym: each answered as alone"
assert_contains "$OUT" " changed=0" "concurrent dlsym/dlvsym: the same pointer every time"
for r in 1 2 3; do
	assert_contains "$OUT" "ROUND $r unloaded=no" "round $r: libibverbs stayed loaded (daxguard keeps it)"
	for p in iova2 reg_mr; do
		assert_eq "EOPNOTSUPP ok" "$(result "round$r-$p" dax) $(result "round$r-$p" anon)" "round $r, $p"
	done
done
# fork 1, threads 1 + 50, rounds 3 x 2
assert_eq 58 "$(grep -c '^daxguard: refused ' <<<"$ERR")" "refusal lines"
assert_eq 58 "$(refused_records life)" "audit: refused records (the child's too)"
assert_eq 0 $(($(rxe_lines) - before)) "new rxe lines"

section "6. MemoryDenyWriteExecute: prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN)"
before=$(rxe_lines)
shim mdwe nccl_like --mdwe --device "$RDMA_DEV" "${REGIONS[@]}" -- "${POINTERS[@]}"
assert_eq 0 "$RC" "nccl_like --mdwe exit status"
IFS=. read -r kmaj kmin _ <<<"$KERNEL_VERSION"
if ((kmaj > 6 || (kmaj == 6 && kmin >= 3))); then
	assert_contains "$OUT" "MDWE set" "PR_SET_MDWE on $KERNEL_VERSION"
	assert_contains "$OUT" "MDWE exec_gain=refused" "MDWE active: writable memory cannot become executable"
else
	assert_contains "$OUT" "MDWE unavailable errno=EINVAL" "no PR_SET_MDWE before Linux 6.3 ($KERNEL_VERSION)"
fi
# The wrapper writes no code: nothing changes under MDWE.
assert_contains "$OUT" "INTERCEPTION plt+dlsym" "daxguard_interception() under MDWE"
for p in "${POINTERS[@]}"; do
	assert_eq EOPNOTSUPP "$(result "$p" dax)" "MDWE: $p on fs-DAX"
	assert_registered "$p" "MDWE"
done
assert_eq 4 "$(refused_records mdwe)" "MDWE: refused records"
assert_eq 0 $(($(rxe_lines) - before)) "MDWE: new rxe lines"

section "7. DAXGUARD_MODE=odp through the pointers (rxe with ODP: 6.18)"
if ! ibv_devinfo -v -d "$RDMA_DEV" | grep -q 'ODP_SUPPORT$'; then
	echo "rxe on $KERNEL_VERSION has no ODP: the odp mode part runs on 6.18 (tests/all)"
else
	# rxe's ODP copy path needs path MTU 4096 (odp.sh), which follows the netdev MTU.
	for dev in veth0 veth1; do
		ip link set "$dev" mtu 9000 || fail "cannot set the $dev MTU to 9000"
	done
	shim odp_regs DAXGUARD_MODE=odp nccl_like --device "$RDMA_DEV" "${REGIONS[@]}" -- "${POINTERS[@]}"
	assert_eq 0 "$RC" "nccl_like exit status, odp mode"
	for p in "${POINTERS[@]}"; do
		assert_eq ok "$(result "$p" dax)" "odp mode: $p on fs-DAX (rewritten to ODP)"
		assert_registered "$p" "odp mode"
	done
	assert_eq 4 "$(grep -c '"action":"rewritten_odp"' "$W/odp_regs.audit")" "audit: rewritten_odp records"
	assert_eq 1 "$(grep -c 'registering it with IBV_ACCESS_ON_DEMAND' <<<"$ERR")" "said once"
	for via in iova2 reg_mr; do
		salt=$((0x7100 + ${#via}))
		shim "odp_$via" DAXGUARD_MODE=odp odpwrite --device "$RDMA_DEV" --dst "/mnt/pmem/odp-$via" --len "$LEN" --salt "$salt" --via "$via"
		assert_eq 0 "$RC" "odpwrite --via $via exit status, odp mode"
		assert_contains "$OUT" "VIA $via from=$SHIM" "odpwrite's $via pointer is daxguard's export"
		assert_contains "$OUT" "REG dst ok" "odpwrite --via $via"
		assert_contains "$OUT" "WRITE ok" "odpwrite --via $via"
		assert_contains "$OUT" "VERIFY ok bytes=2097152" "odpwrite --via $via (mapping and pread)"
		odpwrite --emit-pattern --len "$LEN" --salt "$salt" >"$W/expect-$via" || fail "odpwrite --emit-pattern"
		cmp "$W/expect-$via" "/mnt/pmem/odp-$via" || fail "/mnt/pmem/odp-$via differs from the pattern"
		ok "/mnt/pmem/odp-$via equals the pattern (cmp) after the process exited"
		assert_eq "rewritten_odp /mnt/pmem/odp-$via" \
			"$(sed -n '2{s/.*"action":"\([a-z_]*\)".*/\1/p}' "$W/odp_$via.audit") $(sed -n '2{s/.*"file":"\([^"]*\)".*/\1/p}' "$W/odp_$via.audit")" \
			"audit: the destination rewritten to ODP"
	done
fi

section "daxguard doctor names the interception of the copy it runs under"
assert_contains "$(daxguard run -- daxguard doctor)" "plt+dlsym: PLT exports and dlsym/dlvsym results" "doctor under daxguard run"
assert_contains "$(daxguard doctor)" "no daxguard preloaded in this process" "doctor alone"

assert_kernel_clean
scenario_done
