#!/bin/bash
# DAXGUARD_MODE=odp proven with real traffic (Linux 6.18, the first Debian
# kernel whose rxe has on-demand paging): a real program's pinned fs-DAX
# registration is rewritten to ODP and an RDMA WRITE through it reaches the
# file, byte for byte. Also: enforce still refuses, anonymous and device-DAX
# memory stay pinned, the 6.5+ EFAULT for writable shared page-cache mappings
# is retried with ODP, and registrations already asking for ODP pass untouched.
# The spy behind the shim shows the access flags the provider really got.
#   tests/guest/run --kernel 6.18 tests/scenarios/odp.sh
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
SHIM=$DAXGUARD_SO
for f in "$SHIM" "$BIN/odpwrite" "$BIN/regmatrix" "$BIN/libdaxspy.so"; do
	require_file "$f" "cargo build --release -p daxguard; make -C tests/c"
done
W=$(mktemp -d /tmp/odp.XXXXXX)
LEN=2M # TCG is slow: 2 MiB is 512 pages, four 512 KiB WRITEs
ODP_LINE="registering it with IBV_ACCESS_ON_DEMAND"
TIMES=()

# No date +%N here (busybox date): bash's own clock, in microseconds.
now_ms() { echo $((${EPOCHREALTIME/./} / 1000)); }

# Runs CMD; stdout in $W/NAME.out (also echoed), stderr in $W/NAME.err.
# Sets RC, OUT, ERR and records the time taken.
run() { # name cmd...
	local name=$1 t0
	shift
	t0=$(now_ms)
	RC=0
	"$@" >"$W/$name.out" 2>"$W/$name.err" || RC=$?
	TIMES+=("$(printf '%-16s %6d ms' "$name" $(($(now_ms) - t0)))")
	OUT=$(cat "$W/$name.out") ERR=$(cat "$W/$name.err")
	echo "$name: exit $RC"
	sed 's/^/  | /' "$W/$name.out" "$W/$name.err"
}

# run, under libdaxguard.so in DAXGUARD_MODE=MODE, in front of the spy:
# audit records in $W/NAME.audit, provider calls in $W/NAME.spy, and the
# DAXGUARD_STATS line at exit.
shim() { # name mode cmd...
	local name=$1 mode=$2
	shift 2
	run "$name" env DAXGUARD_MODE="$mode" DAXGUARD_LOG="$W/$name.audit" DAXSPY_LOG="$W/$name.spy" \
		DAXGUARD_STATS=1 LD_PRELOAD="$SHIM:$BIN/libdaxspy.so" "$@"
}

# A key of the Nth audit record: field FILE N KEY (strings unquoted).
field() {
	sed -n "$2{s/.*\"$3\":\"\\{0,1\\}\\([^\",]*\\).*/\\1/p}" "$1"
}

# The access flags the provider got for ADDR, one line per call (libibverbs'
# ibv_reg_mr calls ibv_reg_mr_iova2 inside, so a const-access call logs two).
spy_access() { # spy-log addr
	[[ -e $1 ]] || return 0
	sed -n "s/^[a-z_0-9]* addr=$2 len=[0-9]* access=\\(0x[0-9a-f]*\\)$/\\1/p" "$1" | tr '\n' ' '
}

# The flags ibv_devinfo -v lists under "NAME:", one line each, as one line.
odp_caps() { # devinfo-text name
	awk -v k="$2:" '$1 == k { f = 1; next } f && /^\t\t\t\t\t/ { printf "%s ", $1; next } { f = 0 }' <<<"$1"
}

section "rxe0 on $KERNEL_VERSION: path MTU 4096 and ODP capabilities"
# rxe's ODP copy path needs path MTU 4096 (see below); rxe follows the netdev MTU.
for dev in veth0 veth1; do
	if [[ $(cat "/sys/class/net/$dev/mtu") != 9000 ]] && ! ip link set "$dev" mtu 9000; then
		fail "cannot set the $dev MTU to 9000"
	fi
done
assert_eq 9000 "$(cat /sys/class/net/veth0/mtu)" "veth0 MTU"
devinfo=$(ibv_devinfo -v -d "$RDMA_DEV")
assert_eq 4096 "$(awk '$1 == "active_mtu:" { print $2; exit }' <<<"$devinfo")" "rxe0 active_mtu"
general=$(odp_caps "$devinfo" general_odp_caps)
rc_caps=$(odp_caps "$devinfo" rc_odp_caps)
echo "general_odp_caps: $general"
echo "rc_odp_caps: $rc_caps"
echo "ud_odp_caps: $(odp_caps "$devinfo" ud_odp_caps)"

if [[ $general != *ODP_SUPPORT* ]]; then
	# Without ODP on the device, odp mode must refuse exactly as enforce does.
	section "no ODP on $KERNEL_VERSION: odp mode refuses like enforce"
	shim noodp odp odpwrite --device "$RDMA_DEV" --dst /mnt/pmem/f --len "$LEN"
	assert_eq 1 "$RC" "odpwrite exit status"
	assert_contains "$OUT" "REG dst EOPNOTSUPP" "odpwrite"
	assert_contains "$ERR" "daxguard: refused " "stderr"
	assert_not_contains "$ERR" "$ODP_LINE" "stderr"
	assert_eq refused "$(field "$W/noodp.audit" 2 action)" "audit action of the fs-DAX registration"
	run noodp_k regmatrix --device "$RDMA_DEV" --odp dax=file:/mnt/pmem/r:"$LEN"
	echo "ODP registration of fs-DAX on $KERNEL_VERSION, no shim (informational): $OUT"
	skip "rxe on $KERNEL_VERSION has no ODP; the rest needs --kernel 6.18"
fi
for c in SUPPORT_SEND SUPPORT_RECV SUPPORT_WRITE SUPPORT_READ; do
	assert_contains "$rc_caps" "$c" "rc_odp_caps"
done

section "1. no shim: the kernel refuses the pinned fs-DAX registration"
run plain odpwrite --device "$RDMA_DEV" --dst /mnt/pmem/f --len "$LEN" --salt 0x100
assert_eq 1 "$RC" "odpwrite exit status"
assert_contains "$OUT" "REG src ok" "odpwrite"
assert_contains "$OUT" "REG dst EOPNOTSUPP" "odpwrite"
# The kernel does take the same range with ODP: that is what odp mode relies on.
run plain_odp regmatrix --device "$RDMA_DEV" --odp dax=file:/mnt/pmem/r:"$LEN"
assert_eq "dax ok" "$OUT" "regmatrix --odp on fs-DAX, no shim"

section "2. odp mode: the fs-DAX registration is rewritten to ODP and the WRITE reaches the file"
salt=0x5a17
shim rewrite odp odpwrite --device "$RDMA_DEV" --dst /mnt/pmem/f --len "$LEN" --salt "$salt"
assert_eq 0 "$RC" "odpwrite exit status"
assert_contains "$OUT" "MTU path=4096" "odpwrite"
assert_contains "$OUT" "REG dst ok" "odpwrite"
assert_contains "$OUT" "WRITE ok" "odpwrite"
assert_contains "$OUT" "VERIFY ok bytes=2097152" "odpwrite (mapping and pread)"
assert_eq 1 "$(grep -c "$ODP_LINE" "$W/rewrite.err")" "stderr lines saying ODP"
assert_contains "$ERR" "is on filesystem-DAX: $ODP_LINE" "stderr"
assert_contains "$ERR" "2 registrations seen, 0 refused, 1 forwarded, 1 rewritten to ODP" "DAXGUARD_STATS line"
assert_eq "forwarded not_fsdax 0x1" \
	"$(field "$W/rewrite.audit" 1 action) $(field "$W/rewrite.audit" 1 reason) $(field "$W/rewrite.audit" 1 access)" \
	"audit: anonymous source"
assert_eq "rewritten_odp odp_rewrite fsdax 0 /mnt/pmem/f" \
	"$(field "$W/rewrite.audit" 2 action) $(field "$W/rewrite.audit" 2 reason) $(field "$W/rewrite.audit" 2 verdict) $(field "$W/rewrite.audit" 2 errno) $(field "$W/rewrite.audit" 2 file)" \
	"audit: fs-DAX destination"
src=$(field "$W/rewrite.audit" 1 addr) dst=$(field "$W/rewrite.audit" 2 addr)
assert_eq "0x1 0x1 " "$(spy_access "$W/rewrite.spy" "$src")" "provider's access for the source (pinned)"
assert_eq "0x43 0x43 " "$(spy_access "$W/rewrite.spy" "$dst")" "provider's access for the destination (ODP added)"

# After the process: the file itself, against a pattern generated separately,
# then again after a remount (read from the pmem, nothing cached).
odpwrite --emit-pattern --len "$LEN" --salt "$salt" >"$W/expect" || fail "odpwrite --emit-pattern"
cmp "$W/expect" /mnt/pmem/f || fail "/mnt/pmem/f differs from the pattern after the process exited"
ok "/mnt/pmem/f equals the pattern (cmp) after the process exited"
umount /mnt/pmem || fail "umount /mnt/pmem"
mount -o dax /dev/pmem0 /mnt/pmem || fail "mount -o dax /dev/pmem0"
cmp "$W/expect" /mnt/pmem/f || fail "/mnt/pmem/f differs from the pattern after a remount"
ok "/mnt/pmem/f equals the pattern (cmp) after a remount"
run reverify odpwrite --verify-only --dst /mnt/pmem/f --len "$LEN" --salt "$salt"
assert_eq 0 "$RC" "odpwrite --verify-only exit status"

# Two fs-DAX registrations in one process: both rewritten, said once.
shim twice odp regmatrix --device "$RDMA_DEV" a=file:/mnt/pmem/a:"$LEN" b=file:/mnt/pmem/b:"$LEN"
assert_eq "a ok|b ok" "${OUT//$'\n'/|}" "regmatrix, two fs-DAX files"
assert_eq "rewritten_odp rewritten_odp" "$(field "$W/twice.audit" 1 action) $(field "$W/twice.audit" 2 action)" "audit actions"
assert_eq 1 "$(grep -c "$ODP_LINE" "$W/twice.err")" "stderr lines saying ODP (two rewrites)"

section "3. enforce (the default): refused before the provider"
shim enforce enforce odpwrite --device "$RDMA_DEV" --dst /mnt/pmem/f --len "$LEN" --salt 0x300
assert_eq 1 "$RC" "odpwrite exit status"
assert_contains "$OUT" "REG dst EOPNOTSUPP" "odpwrite"
assert_contains "$ERR" "daxguard: refused " "stderr"
assert_not_contains "$ERR" "$ODP_LINE" "stderr"
assert_eq "refused fsdax EOPNOTSUPP" \
	"$(field "$W/enforce.audit" 2 action) $(field "$W/enforce.audit" 2 reason) $(field "$W/enforce.audit" 2 errno_name)" \
	"audit: fs-DAX destination"
assert_eq "0x1 0x1 " "$(spy_access "$W/enforce.spy" "$(field "$W/enforce.audit" 1 addr)")" "provider's access for the source"
assert_eq "" "$(spy_access "$W/enforce.spy" "$(field "$W/enforce.audit" 2 addr)")" "provider calls for the destination"

section "4. odp mode: anonymous, heap and device-DAX memory stay pinned"
shim pinned odp regmatrix --device "$RDMA_DEV" anon=anon:"$LEN" heap=heap:"$LEN" devdax=devdax:"$DEVDAX":"$LEN"
assert_eq "anon ok|heap ok|devdax ok" "${OUT//$'\n'/|}" "regmatrix"
for n in 1 2 3; do
	a=$(field "$W/pinned.audit" "$n" addr)
	assert_eq "forwarded not_fsdax" "$(field "$W/pinned.audit" "$n" action) $(field "$W/pinned.audit" "$n" reason)" "audit record $n"
	assert_eq "0x7 " "$(spy_access "$W/pinned.spy" "$a")" "provider's access for record $n (no 0x40)"
done
assert_not_contains "$ERR" "$ODP_LINE" "stderr"

section "5. odp mode: the 6.5+ EFAULT for a writable shared page-cache mapping is retried with ODP"
run efault regmatrix --device "$RDMA_DEV" ext4=file:/mnt/ext4/r:"$LEN"
assert_eq "ext4 EFAULT" "$OUT" "regmatrix on non-DAX ext4, no shim"
shim retry odp regmatrix --device "$RDMA_DEV" ext4=file:/mnt/ext4/r:"$LEN"
assert_eq "ext4 ok" "$OUT" "regmatrix on non-DAX ext4, odp mode"
assert_contains "$ERR" "got EFAULT (writable pin of a shared file mapping): $ODP_LINE" "stderr"
assert_eq "rewritten_odp not_fsdax 0 /mnt/ext4/r" \
	"$(field "$W/retry.audit" 1 action) $(field "$W/retry.audit" 1 reason) $(field "$W/retry.audit" 1 errno) $(field "$W/retry.audit" 1 file)" \
	"audit record"
assert_eq "0x7 0x47 " "$(spy_access "$W/retry.spy" "$(field "$W/retry.audit" 1 addr)")" "provider calls: pinned, then ODP"
assert_eq 1 "$(grep -c . "$W/retry.audit")" "audit records (one per registration, none for the retry's inner call)"
assert_contains "$ERR" "1 registrations seen, 0 refused, 0 forwarded, 1 rewritten to ODP" "DAXGUARD_STATS line"
# With traffic: the retried registration carries a real WRITE.
run efault_w odpwrite --device "$RDMA_DEV" --dst /mnt/ext4/f --len "$LEN" --salt 0x500
assert_contains "$OUT" "REG dst EFAULT" "odpwrite on non-DAX ext4, no shim"
shim retry_w odp odpwrite --device "$RDMA_DEV" --dst /mnt/ext4/f --len "$LEN" --salt 0x501
assert_eq 0 "$RC" "odpwrite exit status (non-DAX ext4, odp mode)"
assert_contains "$OUT" "VERIFY ok bytes=2097152" "odpwrite (non-DAX ext4, odp mode)"
# A const-access ibv_reg_mr: libibverbs calls ibv_reg_mr_iova2 inside, twice
# here (pinned, then ODP). Both inner calls belong to the one guarded call.
assert_eq 2 "$(grep -c . "$W/retry_w.audit")" "audit records (source, destination)"
assert_eq "ibv_reg_mr rewritten_odp" "$(field "$W/retry_w.audit" 2 entry) $(field "$W/retry_w.audit" 2 action)" \
	"audit: destination"
assert_eq "0x3 0x3 0x43 0x43 " "$(spy_access "$W/retry_w.spy" "$(field "$W/retry_w.audit" 2 addr)")" \
	"provider calls for the destination: pinned, then ODP"
assert_contains "$ERR" "2 registrations seen, 0 refused, 1 forwarded, 1 rewritten to ODP" "DAXGUARD_STATS line"

section "6. a registration already asking for ODP is forwarded unchanged"
shim ondemand odp regmatrix --device "$RDMA_DEV" --odp dax=file:/mnt/pmem/r:"$LEN" anon=anon:"$LEN"
assert_eq "dax ok|anon ok" "${OUT//$'\n'/|}" "regmatrix --odp"
for n in 1 2; do
	a=$(field "$W/ondemand.audit" "$n" addr)
	assert_eq "forwarded on_demand unchecked" \
		"$(field "$W/ondemand.audit" "$n" action) $(field "$W/ondemand.audit" "$n" reason) $(field "$W/ondemand.audit" "$n" verdict)" \
		"audit record $n"
	assert_eq "0x47 " "$(spy_access "$W/ondemand.spy" "$a")" "provider's access for record $n (one call, as asked)"
done
assert_not_contains "$ERR" "$ODP_LINE" "stderr"

section "why path MTU 4096 (informational, not asserted)"
# Linux 6.18's rxe ODP copy path, at a 1 KiB path MTU, puts every packet at
# offset 0 of its page and still reports success. A pinned registration at
# the same MTU is the control.
run mtu1k_pinned odpwrite --device "$RDMA_DEV" --dst /tmp/f --len "$LEN" --mtu 1024 --salt 0x600
shim mtu1k_odp odp odpwrite --device "$RDMA_DEV" --dst /mnt/pmem/f --len "$LEN" --mtu 1024 --salt 0x601
echo "path MTU 1024 on $KERNEL_VERSION: pinned tmpfs: $(sed -n 's/^VERIFY //p' "$W/mtu1k_pinned.out" | head -n1);" \
	"ODP fs-DAX: $(sed -n 's/^VERIFY //p' "$W/mtu1k_odp.out" | head -n1)"

assert_kernel_clean
section "timings (TCG)"
printf '%s\n' "${TIMES[@]}"
scenario_done
