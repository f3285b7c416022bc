#!/bin/bash
# Scenario 4: a Rust RDMA program on the `ibverbs` crate with daxguard linked
# in (shim/examples/guarded.rs, no LD_PRELOAD) is refused on fs-DAX and
# registers anonymous memory on rxe0, through both the explicit API
# (daxguard::check / daxguard::register) and its own plain ibv_reg_mr calls.
#   shim/examples/build-guest.sh && tests/guest/run tests/scenarios/rust_example.sh
source "$(dirname "$0")/../guest/lib.sh"

command -v guarded >/dev/null ||
	skip "guarded not built: run shim/examples/build-guest.sh (writes target/guest-extra/guarded)"
[[ -n ${RDMA_DEV:-} ]] || fail "RDMA_DEV is not set"
unset LD_PRELOAD

# Runs guarded with an audit log; sets OUT, ERR, RC and LOG (the JSON lines).
run_guarded() { # label args...
	local label=$1 dir
	shift
	dir=$(mktemp -d /tmp/guarded.XXXXXX)
	RC=0
	DAXGUARD_LOG=$dir/log timeout -k 5 120 guarded --device "$RDMA_DEV" "$@" >"$dir/out" 2>"$dir/err" || RC=$?
	OUT=$(cat "$dir/out")
	ERR=$(cat "$dir/err")
	LOG=$(cat "$dir/log" 2>/dev/null)
	echo "--- $label: guarded $* (exit $RC)"
	cat "$dir/out" "$dir/err" | sed 's/^/  | /'
}

# Audit records matching every given JSON fragment.
count_records() { # fragment...
	local f lines=$LOG
	for f in "$@"; do
		lines=$(grep -F -- "$f" <<<"$lines")
	done
	if [[ -z $lines ]]; then echo 0; else wc -l <<<"$lines"; fi
}

section "fs-DAX: refused, explicitly and by linking"
dax=/mnt/pmem/rust_example
make_file "$dax" 4
file_is_dax "$dax" || fail "$dax lacks STATX_ATTR_DAX"
run_guarded fs-DAX --file "$dax"
assert_eq 0 "$RC" "fs-DAX: exit status"
assert_contains "$OUT" "explicit: check: refuses (daxguard: refused" "fs-DAX: explicit check"
assert_contains "$OUT" "explicit: refused (daxguard: refused register(" "fs-DAX: explicit register"
assert_contains "$(grep '^explicit: refused' <<<"$OUT")" "$dax is on filesystem-DAX" "fs-DAX: explicit refusal"
assert_contains "$OUT" "implicit: refused errno=EOPNOTSUPP" "fs-DAX: implicit ibv_reg_mr"
# Only daxguard writes this line: the EOPNOTSUPP above is its own, not the kernel's.
assert_contains "$ERR" "daxguard: refused ibv_reg_mr(" "fs-DAX: stderr"
assert_contains "$(grep '^daxguard: refused' <<<"$ERR")" "$dax is on filesystem-DAX" "fs-DAX: stderr refusal"
assert_contains "$OUT" "ibverbs allocate: registered" "fs-DAX: ibverbs' own heap registration"
assert_eq 1 "$(count_records '"entry":"ibv_reg_mr"' '"action":"refused"' "\"file\":\"$dax\"" '"errno_name":"EOPNOTSUPP"')" \
	"fs-DAX: refused ibv_reg_mr records naming the file"
# ProtectionDomain::allocate's ibv_reg_mr went through the guard too.
assert_eq 1 "$(count_records '"entry":"ibv_reg_mr"' '"action":"forwarded"' '"errno":0,')" \
	"fs-DAX: forwarded ibv_reg_mr records (ibverbs allocate)"

section "fs-DAX with DAXGUARD_MODE=off: the kernel gives the same answer"
DAXGUARD_MODE=off run_guarded "fs-DAX, mode off" --file "$dax"
assert_eq 0 "$RC" "mode off: exit status"
assert_contains "$OUT" "implicit: refused errno=EOPNOTSUPP" "mode off: implicit ibv_reg_mr (kernel)"
assert_not_contains "$ERR" "daxguard: refused" "mode off: stderr"

section "anonymous memory: registered, explicitly and by linking"
run_guarded anonymous --anon --len 2M
assert_eq 0 "$RC" "anonymous: exit status"
assert_contains "$OUT" "explicit: check: allows (anonymous)" "anonymous: explicit check"
assert_contains "$OUT" "explicit: registered" "anonymous: explicit register"
assert_contains "$OUT" "implicit: registered" "anonymous: implicit ibv_reg_mr"
assert_contains "$OUT" "ibverbs allocate: registered" "anonymous: ibverbs' own heap registration"
assert_not_contains "$ERR" "daxguard:" "anonymous: stderr"
assert_eq 2 "$(count_records '"entry":"ibv_reg_mr"' '"action":"forwarded"' '"verdict":"allow"' '"errno":0,')" \
	"anonymous: forwarded ibv_reg_mr records (implicit + allocate)"
assert_eq 0 "$(count_records '"action":"refused"')" "anonymous: refused records"

section "setup errors"
expect_status 2 guarded --device no_such_dev --anon
assert_contains "$(guarded --device no_such_dev --anon 2>&1)" "RDMA device 'no_such_dev' not found (devices: $RDMA_DEV" \
	"unknown device message"

rm -f "$dax"
assert_kernel_clean
scenario_done
