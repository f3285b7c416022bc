#!/bin/bash
# Scenario 2: real programs nobody here wrote, under the shim. perftest's
# ib_write_bw --mmap on an fs-DAX file is refused with daxguard's message; on
# tmpfs and anonymous memory it runs with traffic; ibv_rc_pingpong,
# ibv_ud_pingpong and rping run unchanged with the shim loaded; a program that
# dlopen()s libibverbs RTLD_LOCAL is still guarded, through the pointers it
# fetched too.
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
SHIM=/opt/daxguard/lib/libdaxguard.so
require_file "$SHIM" "build with tests/all"
PRE=(env "LD_PRELOAD=$SHIM")
bw=(ib_write_bw -d "$RDMA_DEV" -n 5 -s 1048576 -F)

pair() { # label port server... -- client...
	local label=$1
	shift
	run_pair "$@"
	OUT="$(cat "$PAIR_SERVER_OUT")
$(cat "$PAIR_CLIENT_OUT")"
	echo "$label: server $PAIR_SERVER_RC, client $PAIR_CLIENT_RC"
}

section "ib_write_bw --mmap on fs-DAX, under daxguard"
make_file /mnt/pmem/bw 4
pair fs-DAX 18515 "${PRE[@]}" "${bw[@]}" --mmap=/mnt/pmem/bw -- "${PRE[@]}" "${bw[@]}" --mmap=/mnt/pmem/bw 127.0.0.1
assert_ne 0 "$PAIR_SERVER_RC" "fs-DAX: ib_write_bw server fails"
assert_contains "$OUT" "daxguard: refused ibv_reg_mr" "fs-DAX: daxguard's refusal"
assert_contains "$OUT" "/mnt/pmem/bw is on filesystem-DAX (ext4 on /dev/pmem0 at /mnt/pmem, dax=always)" "fs-DAX: file and mount named"

section "ib_write_bw on tmpfs and anonymous memory, under daxguard"
make_file /tmp/bw 4
pair tmpfs 18515 "${PRE[@]}" "${bw[@]}" --mmap=/tmp/bw -- "${PRE[@]}" "${bw[@]}" --mmap=/tmp/bw 127.0.0.1
assert_eq "0 0" "$PAIR_SERVER_RC $PAIR_CLIENT_RC" "tmpfs: exit statuses"
assert_contains "$OUT" "BW average" "tmpfs: traffic"
assert_not_contains "$OUT" "daxguard:" "tmpfs: daxguard silent"
pair anonymous 18515 "${PRE[@]}" "${bw[@]}" -- "${PRE[@]}" "${bw[@]}" 127.0.0.1
assert_eq "0 0" "$PAIR_SERVER_RC $PAIR_CLIENT_RC" "anonymous: exit statuses"
assert_contains "$OUT" "BW average" "anonymous: traffic"
assert_not_contains "$OUT" "daxguard:" "anonymous: daxguard silent"

section "ibv_rc_pingpong, ibv_ud_pingpong, rping with the shim loaded"
pair rc_pingpong 18515 "${PRE[@]}" ibv_rc_pingpong -d "$RDMA_DEV" -g 0 -n 20 -- \
	"${PRE[@]}" ibv_rc_pingpong -d "$RDMA_DEV" -g 0 -n 20 127.0.0.1
assert_eq "0 0" "$PAIR_SERVER_RC $PAIR_CLIENT_RC" "ibv_rc_pingpong exit statuses"
assert_contains "$OUT" "iters in" "ibv_rc_pingpong traffic"
pair ud_pingpong 18515 "${PRE[@]}" ibv_ud_pingpong -d "$RDMA_DEV" -g 0 -n 20 -- \
	"${PRE[@]}" ibv_ud_pingpong -d "$RDMA_DEV" -g 0 -n 20 127.0.0.1
assert_eq "0 0" "$PAIR_SERVER_RC $PAIR_CLIENT_RC" "ibv_ud_pingpong exit statuses"
assert_contains "$OUT" "iters in" "ibv_ud_pingpong traffic"
assert_not_contains "$OUT" "daxguard:" "pingpong: daxguard silent"
# rping listens on RDMA CM, not TCP: start the server, give it a moment.
timeout 60 "${PRE[@]}" rping -s -a "$VETH0_IP" -C 5 >/tmp/rping.s 2>&1 &
rs=$!
sleep 2
rc=0
timeout 60 "${PRE[@]}" rping -c -a "$VETH0_IP" -C 5 -v >/tmp/rping.c 2>&1 || rc=$?
wait "$rs" || true
assert_eq 0 "$rc" "rping client exit status"
assert_contains "$(cat /tmp/rping.c)" "ping data" "rping traffic"
assert_not_contains "$(cat /tmp/rping.s /tmp/rping.c)" "daxguard:" "rping: daxguard silent"

section "a program that dlopen()s libibverbs RTLD_LOCAL"
# The dlvsym'd pointers are the shim's exports (its dlsym wrapper), so the
# refusal names the function the program called.
out=$(LD_PRELOAD=$SHIM "$BIN/dlopen_local" --device "$RDMA_DEV" --file /mnt/pmem/dl dlopen dlopen-iova2 2>&1)
assert_contains "$out" "ENTRY dlopen result=fail errno=EOPNOTSUPP" "dlopen RTLD_LOCAL on fs-DAX: refused"
assert_contains "$out" "daxguard: refused ibv_reg_mr(" "dlopen RTLD_LOCAL: refused by the shim (the dlvsym'd ibv_reg_mr)"
assert_contains "$out" "ENTRY dlopen-iova2 result=fail errno=EOPNOTSUPP" "dlopen RTLD_LOCAL, ibv_reg_mr_iova2 pointer, on fs-DAX: refused"
assert_contains "$out" "daxguard: refused ibv_reg_mr_iova2(" "dlopen RTLD_LOCAL: refused by the shim (the dlvsym'd ibv_reg_mr_iova2)"
out=$(LD_PRELOAD=$SHIM "$BIN/dlopen_local" --device "$RDMA_DEV" --anon dlopen dlopen-iova2 2>&1)
assert_contains "$out" "ENTRY dlopen result=ok" "dlopen RTLD_LOCAL on anonymous memory: registered"
assert_contains "$out" "ENTRY dlopen-iova2 result=ok" "dlopen RTLD_LOCAL, ibv_reg_mr_iova2 pointer, on anonymous memory: registered"

section "every entry point refuses fs-DAX on a real device"
out=$(LD_PRELOAD=$SHIM "$BIN/entrypoints" --device "$RDMA_DEV" --file /mnt/pmem/ep macro const iova iova2 rereg 2>&1)
for e in macro const iova iova2 rereg; do
	assert_contains "$out" "ENTRY $e result=fail errno=EOPNOTSUPP" "$e on fs-DAX"
done
out=$(LD_PRELOAD=$SHIM "$BIN/entrypoints" --device "$RDMA_DEV" --anon macro const iova iova2 rereg 2>&1)
for e in macro const iova iova2; do
	assert_contains "$out" "ENTRY $e result=ok" "$e on anonymous memory"
done
# rxe has no rereg_mr (EINVAL from the kernel): on anonymous memory daxguard
# forwards, and the answer is the kernel's own.
kern=$("$BIN/entrypoints" --device "$RDMA_DEV" --anon rereg 2>&1 | grep "^ENTRY rereg")
assert_contains "$out" "$kern" "rereg on anonymous memory: the kernel's answer, unchanged"
assert_kernel_clean
scenario_done
