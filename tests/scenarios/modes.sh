#!/bin/bash
# Issue "policies": each mode against a real program (perftest's ib_write_bw
# --mmap on fs-DAX), each failure explanation provoked for real on rxe0, and
# the audit log parsed and counted.
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
SHIM=/opt/daxguard/lib/libdaxguard.so
require_file "$SHIM" "build with tests/all"
W=$(mktemp -d /tmp/modes.XXXXXX)
make_file /mnt/pmem/bw 4

# An ib_write_bw pair on the fs-DAX file, both sides under the shim in one
# mode (perftest registers its buffer only once the client connected).
bw_server() { # mode
	rm -f "$W/log"
	local -a e=(env "DAXGUARD_MODE=$1" "DAXGUARD_LOG=$W/log" "LD_PRELOAD=$SHIM")
	local -a bw=(ib_write_bw -d "$RDMA_DEV" -n 5 -s 1048576 -F --mmap=/mnt/pmem/bw)
	PAIR_TIMEOUT=60 run_pair 18515 "${e[@]}" "${bw[@]}" -- "${e[@]}" "${bw[@]}" 127.0.0.1
	BW_RC=$PAIR_SERVER_RC
	OUT="$(cat "$PAIR_SERVER_OUT" "$PAIR_CLIENT_OUT")"
	LOG=$(cat "$W/log" 2>/dev/null)
}

count() { # pattern text
	printf '%s\n' "$2" | grep -c -- "$1"
}

section "enforce: refused up front"
bw_server enforce
assert_ne 0 "$BW_RC" "enforce: ib_write_bw fails"
assert_contains "$OUT" "daxguard: refused ibv_reg_mr" "enforce: refusal line"
assert_contains "$LOG" '"action":"refused"' "enforce: audit action"
assert_contains "$LOG" '"errno_name":"EOPNOTSUPP"' "enforce: audit errno"
assert_contains "$LOG" '"file":"/mnt/pmem/bw"' "enforce: audit file"

section "warn: warned, forwarded, the kernel refuses, explained"
bw_server warn
assert_ne 0 "$BW_RC" "warn: ib_write_bw fails (the kernel refuses)"
assert_contains "$OUT" "daxguard: warning: would refuse ibv_reg_mr" "warn: warning line"
assert_contains "$OUT" "failed with EOPNOTSUPP: the kernel refuses long-term pins of filesystem-DAX memory: /mnt/pmem/bw" "warn: kernel refusal explained"
assert_contains "$LOG" '"reason":"warned","file":"/mnt/pmem/bw"' "warn: audit reason"
assert_contains "$LOG" '"action":"forwarded"' "warn: audit action"

section "audit: forwarded, nothing on stderr, the record says it all"
bw_server audit
assert_ne 0 "$BW_RC" "audit: ib_write_bw fails (the kernel refuses)"
assert_not_contains "$OUT" "daxguard:" "audit: nothing on stderr"
assert_contains "$LOG" '"verdict":"fsdax","reason":"audited"' "audit: verdict and reason"
assert_contains "$LOG" '"errno":95,"errno_name":"EOPNOTSUPP"' "audit: the kernel's errno recorded"
assert_contains "$LOG" '"explain":"daxguard: ' "audit: explanation recorded"

section "off: untouched"
bw_server off
assert_ne 0 "$BW_RC" "off: ib_write_bw fails (the kernel refuses)"
assert_not_contains "$OUT" "daxguard:" "off: nothing on stderr"
assert_eq 0 "$(count . "$LOG")" "off: no audit records"

section "explanations, provoked for real"
# EFAULT: a writable pin of a shared page-cache file (Linux 6.5+).
make_file /mnt/ext4/shared 2
out=$(LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" f=file:/mnt/ext4/shared:2M 2>&1)
kern=$(regmatrix --device "$RDMA_DEV" f=file:/mnt/ext4/shared:2M 2>&1)
if [[ $kern == "f EFAULT" ]]; then
	assert_contains "$out" "f EFAULT" "page-cache file: errno kept"
	assert_contains "$out" "Linux 6.5+ refuses writable long-term pins of shared page-cache file mappings (/mnt/ext4/shared)" "page-cache file: EFAULT explained"
else
	assert_eq "f ok" "$kern" "page-cache file on $KERNEL_VERSION (before 6.5: allowed)"
fi
# EFAULT: PROT_NONE and unmapped pages.
out=$(LD_PRELOAD=$SHIM badargs --device "$RDMA_DEV" protnone unmapped 2>&1)
assert_contains "$out" "CASE protnone" "PROT_NONE registration ran"
assert_contains "$out" "the pages are PROT_NONE at" "PROT_NONE explained"
assert_contains "$out" "nothing is mapped at" "unmapped range explained"
# ENOMEM: an unprivileged user with a small RLIMIT_MEMLOCK (root has CAP_IPC_LOCK).
chmod 666 /dev/infiniband/uverbs* 2>/dev/null
# The initramfs keeps the builder's 0700 directories: let others read programs.
chmod a+rx / /tmp
chmod -R a+rX /bin /sbin /lib /lib64 /usr /etc /opt 2>/dev/null
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups -- sh -c \
	"ulimit -l 64; LD_PRELOAD=$SHIM $BIN/regmatrix --device $RDMA_DEV a=anon:8M" 2>&1)
assert_contains "$out" "a ENOMEM" "memlock: ENOMEM kept"
assert_contains "$out" "asked for 8388608 bytes with RLIMIT_MEMLOCK 65536" "memlock: explained with the limit"
# ODP on a device without ODP (rxe before 6.18).
if ibv_devinfo -v -d "$RDMA_DEV" | grep -q ODP_SUPPORT; then
	echo "$RDMA_DEV has ODP on $KERNEL_VERSION: the no-ODP explanation is tested on 6.12"
else
	out=$(LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" --odp a=anon:2M 2>&1)
	assert_contains "$out" "the device does not support on-demand paging" "no ODP: explained"
fi

section "odp mode without ODP support refuses as enforce does"
if ! ibv_devinfo -v -d "$RDMA_DEV" | grep -q ODP_SUPPORT; then
	bw_server odp
	assert_contains "$OUT" "daxguard: refused ibv_reg_mr" "odp mode, no ODP: refused"
fi

section "invalid settings: reported once, defaults used"
out=$(DAXGUARD_MODE=bogus DAXGUARD_UNKNOWN=maybe LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" a=anon:2M d=file:/mnt/pmem/bw:2M 2>&1)
assert_eq 1 "$(count 'ignoring DAXGUARD_MODE="bogus"' "$out")" "bad mode reported once"
assert_eq 1 "$(count 'ignoring DAXGUARD_UNKNOWN="maybe"' "$out")" "bad unknown-policy reported once"
assert_contains "$out" "d EOPNOTSUPP" "default (enforce) applies"
assert_contains "$out" "daxguard: refused" "refused by daxguard"

section "the audit log, parsed and counted"
rm -f "$W/all"
DAXGUARD_LOG=$W/all LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" a=anon:2M b=heap:2M c=anon:2M d=file:/mnt/pmem/bw:2M t=file:/tmp/t:2M >/dev/null 2>&1
LOG=$(cat "$W/all")
assert_eq 5 "$(count . "$LOG")" "one record per registration"
assert_eq 5 "$(count '^{"time":[0-9.]*,"pid":[0-9]*,"tid":[0-9]*,"program":"regmatrix","rank":null,"job":null,"step":null,"consumer":"rdma","entry":"ibv_reg_mr_iova2",.*"mode":"enforce","verdict":.*"decide_ns":[0-9]*}$' "$LOG")" "every record is whole"
assert_eq 1 "$(count '"action":"refused"' "$LOG")" "refused records"
assert_eq 4 "$(count '"action":"forwarded"' "$LOG")" "forwarded records"
assert_eq 600 "$(stat -c %a "$W/all")" "log file mode"
# Which lookup path answered: PROCMAP_QUERY from Linux 6.11 on, the
# mmap-events map before it (root here: perf is allowed), maps text when
# DAXGUARD_LOOKUP says so; doctor under the shim says the same.
want=events
[[ $(printf '%s\n' 6.11 "$(uname -r)" | sort -V | head -1) == 6.11 ]] && want=procmap_query
if [[ $want == events ]]; then
	# The map keeps no names: the records that name a file read maps text for
	# it. The first two registrations of a process read maps text too: the
	# map is set up after the second (a process that registers once never
	# pays for it), and answers from the third on.
	assert_eq 2 "$(count '"file":null,.*"lookup":"maps"' "$(head -n 2 <<<"$LOG")")" "the first two (anonymous memory, heap) read maps text"
	assert_contains "$(sed -n 3p <<<"$LOG")" '"lookup":"events"' "the third (anonymous memory) names the map (events)"
	assert_eq 2 "$(count '"file":"/[^"]*",.*"lookup":"maps"' "$LOG")" "records naming a file name maps text"
	# Without a log (no record to fill), what each registration reads: the
	# first probes PROCMAP_QUERY (maps, ENOTTY), then asks map_files, where
	# no file meets the anonymous range: the whole answer. The second (fs-DAX)
	# meets a file there and reads maps text for its name; after it, the map
	# is set up (perf events, one full read), and the third and fourth read nothing.
	out=$(LD_PRELOAD=$SHIM strace -f -e trace=openat,perf_event_open -o "$W/trace" regmatrix --device "$RDMA_DEV" \
		a=anon:2M d=file:/mnt/pmem/bw:2M b=anon:2M c=anon:2M 2>/dev/null)
	assert_eq "a ok d EOPNOTSUPP b ok c ok" "$(echo $out)" "the registrations under strace"
	seq=$(sed -n 's/.*"\/proc\/self\/\(maps\|map_files\)".*/\1/p; s/.*perf_event_open(.*/perf/p' "$W/trace" | awk '$0 != "perf" || last != "perf"; { last = $0 }' | tr '\n' ' ')
	assert_eq "maps map_files map_files maps perf maps " "$seq" "what the shim read, in order (perf: one event per CPU)"
else
	assert_eq 5 "$(count "\"lookup\":\"$want\"" "$LOG")" "records name the lookup path ($want)"
fi
rm -f "$W/maps"
DAXGUARD_LOOKUP=maps DAXGUARD_LOG=$W/maps LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" a=anon:2M >/dev/null 2>&1
assert_eq 1 "$(count '"lookup":"maps"' "$(cat "$W/maps")")" "DAXGUARD_LOOKUP=maps: the record says maps"
out=$("$BIN/daxguard" run --lib "$SHIM" -- "$BIN/daxguard" doctor 2>&1) || true # a FAIL line elsewhere is not this check
assert_contains "$out" "the preloaded daxguard $([[ $want == events ]] && echo "finds VMAs in its mmap-events map" || echo "finds VMAs with PROCMAP_QUERY")" "doctor names the preloaded copy's lookup"
out=$(DAXGUARD_STATS=1 LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" a=anon:2M d=file:/mnt/pmem/bw:2M 2>&1)
assert_contains "$out" "daxguard: stats: 2 registrations seen, 1 refused, 1 forwarded, 0 rewritten to ODP" "stats line"
assert_kernel_clean
scenario_done
