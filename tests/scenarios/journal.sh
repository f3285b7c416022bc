#!/bin/bash
# Issue 15: audit records in the real systemd journal (DAXGUARD_LOG=journal)
# and `daxguard metrics` on real audit logs. The guest has no systemd as
# PID 1: systemd-journald (copied from the host, tests/guest/initramfs.sh)
# is started by hand, with a machine id and its /run directories, and
# creates its own sockets. Then: a refusal found with `journalctl
# DAXGUARD_VERDICT=refuse` with its file, rank, job and MESSAGE_ID; no
# record lost across fork and vfork+exec, nor by processes that exit right
# after registering; an entry bigger than the socket's send buffer sent as
# a sealed memfd; a journal that is gone said once; the metrics textfile.
#   tests/guest/run tests/scenarios/journal.sh
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
SHIM=/opt/daxguard/lib/libdaxguard.so
ID=289bece2b89148a1a20688e09fb634eb
require_file "$SHIM" "build with tests/all"
require_file "$BIN/regmatrix" "build with tests/all"
require_file "$BIN/life" "build with tests/all"
require_file /usr/lib/systemd/systemd-journald "the guest image copies it from the host (systemd)"
W=$(mktemp -d /tmp/journal.XXXXXX)
make_file /mnt/pmem/j 2

count() { # pattern text
	printf '%s\n' "$2" | grep -c -- "$1"
}

# The JSON entries journalctl has for MATCHES, waiting (up to 10 s) until
# there are WANT of them; then once more, so that extra entries show too.
entries() { # want matches...
	local want=$1 n=100 got
	shift
	while :; do
		got=$(journalctl --no-pager -o json "$@" 2>/dev/null)
		(($(count . "$got") >= want || n-- <= 0)) && break
		sleep 0.1
	done
	sleep 0.3
	journalctl --no-pager -o json "$@" 2>/dev/null
}

section "systemd-journald, started by hand"
# What journald needs without systemd: a machine id (it names the journal's
# directory), the cgroup2 hierarchy (it exits without one: "Failed to
# acquire cgroup root path"), and /run/systemd/journal for its sockets.
tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id
mountpoint -q /sys/fs/cgroup || mount -t cgroup2 cgroup2 /sys/fs/cgroup || fail "mount cgroup2"
mkdir -p /run/systemd/journal /run/log/journal
/usr/lib/systemd/systemd-journald >"$W/journald.log" 2>&1 &
JOURNALD=$!
n=100
until journalctl --no-pager -q -t systemd-journald 2>/dev/null | grep -q 'Journal started'; do
	kill -0 "$JOURNALD" 2>/dev/null || fail "journald exited: $(cat "$W/journald.log")"
	((n-- > 0)) || fail "journald not started in 10 s: $(cat "$W/journald.log")"
	sleep 0.1
done
[[ -S /run/systemd/journal/socket ]] || fail "no /run/systemd/journal/socket"
ok "journald $(journalctl --version | head -1 | awk '{ print $2 }') runs (pid $JOURNALD) and listens on /run/systemd/journal/socket"

section "a refusal, found with journalctl DAXGUARD_VERDICT=refuse"
out=$(SLURM_JOB_ID=j1 SLURM_STEP_ID=0 OMPI_COMM_WORLD_RANK=1 DAXGUARD_LOG=journal LD_PRELOAD=$SHIM \
	regmatrix --device "$RDMA_DEV" d=file:/mnt/pmem/j:2M a=anon:2M 2>&1)
assert_contains "$out" "d EOPNOTSUPP" "regmatrix: fs-DAX refused"
assert_contains "$out" "(rank 1, Slurm job j1 step 0)" "the stderr line names rank and job"
assert_not_contains "$out" "cannot send" "the journal took the records"
e=$(entries 1 DAXGUARD_VERDICT=refuse DAXGUARD_JOB=j1)
assert_eq 1 "$(count . "$e")" "one refuse entry for job j1"
for field in "\"DAXGUARD_FILE\":\"/mnt/pmem/j\"" "\"MESSAGE_ID\":\"$ID\"" '"DAXGUARD_RANK":"1"' \
	'"DAXGUARD_STEP":"0"' '"DAXGUARD_MODE":"enforce"' '"DAXGUARD_CONSUMER":"rdma"' '"DAXGUARD_ACTION":"refused"' \
	'"PRIORITY":"4"' '"SYSLOG_IDENTIFIER":"daxguard"' '"ERRNO":"95"' '"_COMM":"regmatrix"' \
	'"MESSAGE":"daxguard: refused ibv_reg_mr_iova2('; do
	assert_contains "$e" "$field" "the entry's $field"
done
assert_contains "$(entries 1 DAXGUARD_VERDICT=refuse)" '"DAXGUARD_FILE":"/mnt/pmem/j"' "journalctl DAXGUARD_VERDICT=refuse -o json finds it"
assert_contains "$(entries 1 MESSAGE_ID=$ID DAXGUARD_JOB=j1 DAXGUARD_VERDICT=allow)" '"DAXGUARD_RANGE":"allow"' "the anonymous registration: verdict allow, same MESSAGE_ID"
assert_contains "$(journalctl --no-pager -t daxguard -o cat DAXGUARD_JOB=j1)" "/mnt/pmem/j is on filesystem-DAX" "journalctl -t daxguard shows the message"
out=$(SLURM_JOB_ID=j2 DAXGUARD_MODE=warn DAXGUARD_LOG=journal LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" d=file:/mnt/pmem/j:2M 2>&1)
e=$(entries 1 DAXGUARD_VERDICT=warn DAXGUARD_JOB=j2)
assert_contains "$e" '"DAXGUARD_REASON":"warned"' "warn mode: DAXGUARD_VERDICT=warn"
assert_contains "$e" '"ERRNO":"95"' "warn mode: the kernel's own EOPNOTSUPP recorded"

section "fork and vfork+exec: no record lost"
for c in fork vfork; do
	out=$(SLURM_JOB_ID="life-$c" DAXGUARD_LOG=journal LD_PRELOAD=$SHIM timeout -k 5 120 \
		life --device "$RDMA_DEV" --dax /mnt/pmem/life "$c" 2>"$W/life.err")
	assert_not_contains "$out" "FAIL " "life $c"
	regs=$(count '^PASS reg ' "$out")
	refused=$(count '^PASS reg .*: EOPNOTSUPP$' "$out")
	e=$(entries "$regs" DAXGUARD_JOB="life-$c")
	assert_eq "$regs" "$(count . "$e")" "life $c: one entry per registration, parent and child ($regs)"
	assert_eq "$refused" "$(count '"DAXGUARD_VERDICT":"refuse"' "$e")" "life $c: one refuse entry per EOPNOTSUPP"
	pids=$(printf '%s\n' "$e" | grep -o '"_PID":"[0-9]*"' | sort -u | wc -l)
	((pids >= 2)) || fail "life $c: entries from $pids process(es), expected the child's too"
	ok "life $c: entries from $pids processes"
done

section "processes that exit right after registering"
pids=()
for i in $(seq 20); do
	SLURM_JOB_ID=exit1 DAXGUARD_LOG=journal LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" d=file:/mnt/pmem/j:2M >/dev/null 2>&1 &
	pids+=($!)
done
wait "${pids[@]}" # not journald
e=$(entries 20 DAXGUARD_JOB=exit1)
assert_eq 20 "$(count '"DAXGUARD_VERDICT":"refuse"' "$e")" "20 processes, 20 refuse entries"
assert_eq 20 "$(printf '%s\n' "$e" | grep -o '"_PID":"[0-9]*"' | sort -u | wc -l)" "from 20 processes"

section "an entry bigger than the send buffer goes as a sealed memfd"
# A long path (about 3 KiB) appears in DAXGUARD_FILE and MESSAGE; with the
# smallest default send buffer the kernel allows, one datagram cannot hold it.
long=/mnt/pmem
for i in $(seq 14); do long=$long/$(printf 'd%02d%0200d' "$i" 0); done
mkdir -p "$long"
make_file "$long/f" 2
old_wmem=$(cat /proc/sys/net/core/wmem_default)
echo 4608 >/proc/sys/net/core/wmem_default
SLURM_JOB_ID=big DAXGUARD_LOG=journal LD_PRELOAD=$SHIM strace -f -o "$W/strace" -e trace=memfd_create,sendmsg \
	regmatrix --device "$RDMA_DEV" "d=file:$long/f:2M" >"$W/big.out" 2>&1
echo "$old_wmem" >/proc/sys/net/core/wmem_default
assert_contains "$(cat "$W/big.out")" "d EOPNOTSUPP" "long path: refused"
assert_contains "$(cat "$W/strace")" 'memfd_create("daxguard-journal"' "the entry went into a memfd"
assert_contains "$(cat "$W/strace")" "SCM_RIGHTS" "passed with SCM_RIGHTS"
e=$(entries 1 DAXGUARD_JOB=big DAXGUARD_VERDICT=refuse)
assert_contains "$e" "\"DAXGUARD_FILE\":\"$long/f\"" "journald read it: the whole path"
assert_contains "$e" "\"MESSAGE_ID\":\"$ID\"" "with its MESSAGE_ID"
rm -rf /mnt/pmem/d01*

section "the journal gone: said once, the program unaffected"
kill "$JOURNALD"
wait "$JOURNALD" 2>/dev/null
out=$(DAXGUARD_LOG=journal LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" d=file:/mnt/pmem/j:2M a=anon:2M 2>&1)
assert_eq 1 "$(count 'cannot send audit records to the journal' "$out")" "said once for two records"
assert_contains "$out" "d EOPNOTSUPP" "still refused"
assert_contains "$out" "a ok" "still registered"

section "daxguard metrics: a textfile from real audit logs"
for mode in enforce enforce warn audit; do
	DAXGUARD_MODE=$mode DAXGUARD_LOG=$W/audit.jsonl LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" \
		d=file:/mnt/pmem/j:2M a=anon:2M >/dev/null 2>&1
done
mkdir -p "$W/textfile"
expect_status 0 daxguard metrics --textfile "$W/textfile/daxguard.prom" "$W/audit.jsonl"
prom=$(cat "$W/textfile/daxguard.prom")
assert_contains "$prom" 'daxguard_refusals_total{program="regmatrix",file="/mnt/pmem/j",consumer="rdma",mode="enforce"} 2' "refusals by program, file, consumer, mode"
assert_contains "$prom" 'daxguard_warnings_total{program="regmatrix",file="/mnt/pmem/j",consumer="rdma",mode="warn"} 1' "warn mode counted"
assert_contains "$prom" 'daxguard_warnings_total{program="regmatrix",file="/mnt/pmem/j",consumer="rdma",mode="audit"} 1' "audit mode counted"
assert_contains "$prom" 'daxguard_audit_records_total{program="regmatrix",consumer="rdma",action="forwarded"} 6' "every record"
assert_contains "$prom" "# TYPE daxguard_refusals_total counter" "TYPE lines"
assert_eq 644 "$(stat -c %a "$W/textfile/daxguard.prom")" "textfile mode"
assert_eq daxguard.prom "$(ls "$W/textfile")" "no temporary file left"
assert_kernel_clean
scenario_done
