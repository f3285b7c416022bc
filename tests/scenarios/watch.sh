#!/bin/bash
# daxguard watch (issue 14): with no shim preloaded anywhere, every long-term
# pin the kernel refuses is reported once, by the process that asked, with
# its consumer, errno and file; nothing else is. Then a burst of 100,000
# refused and 100,000 successful pins in one process: every refusal is
# reported or counted as dropped, none is invented, and watch's memory
# stays bounded.
#   RDMA: ib_write_bw --mmap and regmatrix on rxe0 (ib_umem_get)
#   V4L2: v4l2cap, USERPTR QBUF on vivid (get_vaddr_frames)
#   io_uring: uring, IORING_REGISTER_BUFFERS (io_pin_pages)
# 6.5+ also refuses writable pins of shared ext4 mappings with EFAULT.
# --journal is checked against journalsink, a stand-in for journald.
# shellcheck disable=SC2317 # expect_refusals runs through `later`, by eval
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
for f in daxguard regmatrix v4l2cap uring pinburst journalsink; do require_file "$BIN/$f" "cargo build --release; make -C tests/c"; done
[[ -z ${LD_PRELOAD:-} ]] || fail "LD_PRELOAD is set ($LD_PRELOAD): watch is tested without the shim"
W=$(mktemp -d /tmp/watch.XXXXXX)
major=${KERNEL_VERSION%%.*} minor=${KERNEL_VERSION#*.}
minor=${minor%%.*}
new_gup=0
((major > 6 || (major == 6 && minor >= 5))) && new_gup=1

# WITH_PID FILE COMMAND...: runs COMMAND with its pid written to FILE first
# (exec keeps the pid). An array, not a function, so run_pair's timeout can run it.
# shellcheck disable=SC2016 # expanded by the inner bash
WITH_PID=(bash -c 'echo $$ >"$0"; exec "$@"')

# The refusals of process PID in a JSON output, one line each:
# "comm consumer error reason path deleted" (path and deleted empty without a file).
refusals_of() { # pid [output]
	grep '"type":"refusal"' "${2:-$W/main.out}" | grep "\"pid\":$1," |
		sed -E 's/.*"comm":"([^"]*)".*"consumer":"([^"]*)".*"error":"([^"]*)","reason":"([^"]*)".*"file":(null|\{"path":"([^"]*)","path_complete":[a-z]*,"deleted":([a-z]*)).*/\1 \2 \3 \4 \6 \7/'
}

# Asserts that the refusals of the process whose pid is in $W/NAME.pid are
# N lines, each equal to LINE (or, for N > 1 different lines, exactly LINES).
expect_refusals() { # name n line what
	local got
	got=$(refusals_of "$(pid_of "$1")")
	if (($2 == 0)); then
		assert_eq "" "$got" "$4: no refusal reported"
		return
	fi
	assert_eq "$2" "$(printf '%s\n' "$got" | grep -c .)" "$4: refusals reported"
	assert_eq "$3" "$(printf '%s\n' "$got" | sort -u)" "$4: each one"
}

pid_of() { cat "$W/$1.pid"; }

# Checks on watch's output wait until it stopped (and drained its ring
# buffer): LATER keeps them, with the section they belong to.
LATER=()
later() { # command...
	LATER+=("$(printf '%q ' "$@")")
}

section "watch on Linux $KERNEL_VERSION: attach"
daxguard doctor >"$W/doctor" || true
assert_contains "$(grep 'daxguard watch' "$W/doctor")" "can run here" "doctor: watch can run"
start_watch main --json --metrics-file "$W/metrics.prom"
MAIN=$WATCH_PID
head -n 2 "$W/main.err"
# pin_user_pages_remote() takes 7 arguments before 6.5, trampolines 6 before 6.6.
if ((new_gup)); then
	attached="fexit on pin_user_pages_fast(), pin_user_pages(), pin_user_pages_remote(), pin_user_pages_unlocked()"
else
	attached="fexit on pin_user_pages_fast(), pin_user_pages(), pin_user_pages_unlocked(); kprobe+kretprobe on pin_user_pages_remote()"
fi
assert_contains "$(grep 'daxguard watch' "$W/doctor")" "attached: $attached" "doctor: each hook's attachment"
assert_contains "$(grep "watching long-term pins" "$W/main.err")" "($attached" "watch's first line: each hook's attachment"
# A second watcher at the same time, in text, only for v4l2cap.
start_watch text --comm v4l2cap
TEXT=$WATCH_PID

section "RDMA: ib_write_bw --mmap on fs-DAX (both sides refused at ibv_reg_mr)"
make_file /mnt/pmem/bw 4
bw=(ib_write_bw -d "$RDMA_DEV" -n 5 -s 65536 -F --mmap=/mnt/pmem/bw)
PAIR_TIMEOUT=60 run_pair 18515 "${WITH_PID[@]}" "$W/bw-server.pid" "${bw[@]}" -- \
	"${WITH_PID[@]}" "$W/bw-client.pid" "${bw[@]}" 127.0.0.1
assert_ne 0 "$PAIR_CLIENT_RC" "ib_write_bw client fails (the kernel refused its MR)"
later expect_refusals bw-client 1 "ib_write_bw rdma EOPNOTSUPP fsdax /mnt/pmem/bw false" "ib_write_bw client"
later expect_refusals bw-server 1 "ib_write_bw rdma EOPNOTSUPP fsdax /mnt/pmem/bw false" "ib_write_bw server"

section "RDMA: regmatrix, fs-DAX (and an unlinked fs-DAX file) next to anonymous, tmpfs and device-DAX"
make_file /mnt/pmem/rm.dax 2
"${WITH_PID[@]}" "$W/rm.pid" regmatrix --device "$RDMA_DEV" dax=file:/mnt/pmem/rm.dax:2M anon=anon:2M heap=heap:64K \
	tmpfs=file:/tmp/rm.tmpfs:2M devdax=devdax:"$DEVDAX":2M memfd=memfd:2M del=deleted:/mnt/pmem/rm.del:2M >"$W/rm" 2>&1
assert_eq "dax EOPNOTSUPP|anon ok|heap ok|tmpfs ok|devdax ok|memfd ok|del EOPNOTSUPP|" "$(tr '\n' '|' <"$W/rm")" "regmatrix results"
later expect_refusals rm 2 "regmatrix rdma EOPNOTSUPP fsdax /mnt/pmem/rm.dax false
regmatrix rdma EOPNOTSUPP fsdax /mnt/pmem/rm.del true" \
	"regmatrix: one refusal per fs-DAX region, the unlinked one's path as it was, none for the others"

section "V4L2: USERPTR QBUF on vivid"
"${WITH_PID[@]}" "$W/v4l2.dax.pid" v4l2cap --file /mnt/pmem/v4l2.dax >"$W/v4l2.dax" 2>&1
n=$(grep -c '^qbuf [0-9]*: EOPNOTSUPP$' "$W/v4l2.dax")
assert_eq 3 "$n" "v4l2cap on fs-DAX: three QBUFs refused"
later expect_refusals v4l2.dax "$n" "v4l2cap v4l2 EOPNOTSUPP fsdax /mnt/pmem/v4l2.dax false" "v4l2cap on fs-DAX"
for kind in anon tmpfs devdax; do
	case $kind in
	anon) mem=(--anon) ;;
	tmpfs) mem=(--file /tmp/v4l2.tmpfs) ;;
	devdax) mem=(--devdax "$DEVDAX") ;;
	esac
	"${WITH_PID[@]}" "$W/v4l2.$kind.pid" v4l2cap --expect streamed "${mem[@]}" >"$W/v4l2.$kind" 2>&1 ||
		fail "v4l2cap $kind: $(tail -n 5 "$W/v4l2.$kind")"
	later expect_refusals "v4l2.$kind" 0 "" "v4l2cap on $kind (streamed)"
done

section "io_uring: IORING_REGISTER_BUFFERS"
"${WITH_PID[@]}" "$W/uring.dax.pid" uring --file /mnt/pmem/uring.dax buffers >"$W/uring.dax" 2>&1
assert_eq "EOPNOTSUPP" "$(sed -n 's/^register buffers: //p' "$W/uring.dax")" "uring on fs-DAX: refused"
later expect_refusals uring.dax 1 "uring io_uring EOPNOTSUPP fsdax /mnt/pmem/uring.dax false" "uring on fs-DAX"
for kind in anon tmpfs devdax; do
	case $kind in
	anon) mem=(--anon) ;;
	tmpfs) mem=(--file /tmp/uring.tmpfs) ;;
	devdax) mem=(--devdax "$DEVDAX") ;;
	esac
	"${WITH_PID[@]}" "$W/uring.$kind.pid" uring "${mem[@]}" buffers >"$W/uring.$kind" 2>&1
	# Before 6.5 io_uring itself refuses device-DAX (file-backed) after a successful pin: not GUP's refusal.
	later expect_refusals "uring.$kind" 0 "" "uring on $kind ($(sed -n 's/^register buffers: //p' "$W/uring.$kind"))"
done

section "a writable shared ext4 mapping: EFAULT from 6.5"
"${WITH_PID[@]}" "$W/v4l2.ext4.pid" v4l2cap --file "$EXT4_MNT/v4l2.ext4" >"$W/v4l2.ext4" 2>&1
"${WITH_PID[@]}" "$W/uring.ext4.pid" uring --file "$EXT4_MNT/uring.ext4" buffers >"$W/uring.ext4" 2>&1
if ((new_gup)); then
	n=$(grep -c '^qbuf [0-9]*: EFAULT$' "$W/v4l2.ext4")
	assert_eq 3 "$n" "v4l2cap on ext4: three QBUFs refused with EFAULT"
	later expect_refusals v4l2.ext4 "$n" "v4l2cap v4l2 EFAULT writable_file $EXT4_MNT/v4l2.ext4 false" "v4l2cap on ext4"
	later expect_refusals uring.ext4 1 "uring io_uring EFAULT writable_file $EXT4_MNT/uring.ext4 false" "uring on ext4"
else
	assert_contains "$(cat "$W/v4l2.ext4")" "result: streamed" "v4l2cap on ext4 streams before 6.5"
	later expect_refusals v4l2.ext4 0 "" "v4l2cap on ext4 (no GUP refusal before 6.5)"
	later expect_refusals uring.ext4 0 "" "uring on ext4 (io_uring's own pre-6.5 rule, not GUP's)"
fi

section "stop: the refusals each process had, summary, metrics"
stop_watch "$MAIN" main
stop_watch "$TEXT" text
for c in "${LATER[@]}"; do
	eval "$c"
done
summary=$(grep '"type":"summary"' "$W/main.out")
total=$(grep -c '"type":"refusal"' "$W/main.out")
efault=$((new_gup ? 4 : 0))
assert_eq $((2 + 2 + 3 + 1 + efault)) "$total" "main: refusals reported in all"
assert_contains "$summary" "\"refusals\":$total,\"dropped\":0,\"unresolved\":0,\"why\":\"signal\"" "main: summary"
m=$(cat "$W/metrics.prom")
assert_contains "$m" 'daxguard_watch_refusals_total{consumer="rdma",errno="EOPNOTSUPP"} 4' "metrics: rdma"
assert_contains "$m" 'daxguard_watch_refusals_total{consumer="v4l2",errno="EOPNOTSUPP"} 3' "metrics: v4l2"
assert_contains "$m" 'daxguard_watch_refusals_total{consumer="io_uring",errno="EOPNOTSUPP"} 1' "metrics: io_uring"
assert_contains "$m" "daxguard_watch_refusals_total{consumer=\"v4l2\",errno=\"EFAULT\"} $((new_gup ? 3 : 0))" "metrics: v4l2 EFAULT"
assert_contains "$m" 'daxguard_watch_dropped_total 0' "metrics: dropped"
assert_contains "$m" 'daxguard_watch_up 0' "metrics: down after exit"
# The text watcher saw only v4l2cap, one line per refusal.
text=$(grep ' refused: ' "$W/text.out")
assert_eq $((3 + (new_gup ? 3 : 0))) "$(printf '%s\n' "$text" | grep -c .)" "text --comm v4l2cap: one line per refusal"
assert_eq 0 "$(printf '%s\n' "$text" | grep -vc ' comm v4l2cap ')" "text --comm v4l2cap: nothing else"
line=$(printf '%s\n' "$text" | grep -m1 EOPNOTSUPP)
echo "  $line" | cut -c1-400
assert_contains "$line" "v4l2 via get_vaddr_frames+" "text: consumer and caller"
assert_contains "$line" "EOPNOTSUPP (filesystem-DAX memory: Linux never pins it long-term" "text: errno and meaning"
assert_contains "$line" "/mnt/pmem/v4l2.dax (dev " "text: the file"
assert_contains "$line" "on ext4 at /mnt/pmem (pmem0)" "text: the mount"
if ((new_gup)); then
	assert_contains "$text" "EFAULT (a writable long-term pin of a shared page-cache file mapping: Linux 6.5+ refuses it" \
		"text: EFAULT has its own explanation"
fi
assert_contains "$(tail -n1 "$W/text.out")" "summary: $((3 + (new_gup ? 3 : 0))) refusals, dropped 0" "text: summary"

section "--count, --duration, --pid, and refusing to run"
start_watch count --json --count 1
COUNT=$WATCH_PID
start_watch other --json --pid 1 --duration 3
OTHER=$WATCH_PID
uring --file /mnt/pmem/uring.dax buffers >/dev/null 2>&1
uring --file /mnt/pmem/uring.dax buffers >/dev/null 2>&1
rc=0
wait "$COUNT" || rc=$?
assert_eq "0 1" "$rc $(grep -c '"type":"refusal"' "$W/count.out")" "--count 1: exit 0 after one refusal"
assert_contains "$(tail -n1 "$W/count.out")" '"why":"count"' "--count: the summary says why"
rc=0
wait "$OTHER" || rc=$?
assert_eq "0 0" "$rc $(grep -c '"type":"refusal"' "$W/other.out")" "--pid 1 --duration 3: nothing from other processes"
assert_contains "$(tail -n1 "$W/other.out")" '"why":"duration"' "--duration: the summary says why"
expect_status 2 setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all daxguard watch
assert_eq 1 "$(setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all daxguard watch 2>&1 | grep -c 'needs root')" \
	"unprivileged: one line says why"
expect_status 2 daxguard watch --errno EINVAL

section "--journal: an entry with DAXGUARD_* fields per refusal (journalsink stands in for journald)"
mkdir -p /run/systemd/journal
journalsink /run/systemd/journal/socket >"$W/journal" 2>&1 &
SINK=$!
n=100
until grep -q READY "$W/journal"; do
	((n-- > 0)) || fail "journalsink did not start: $(cat "$W/journal")"
	sleep 0.1
done
start_watch journal --journal --comm uring
"${WITH_PID[@]}" "$W/uring.journal.pid" uring --file /mnt/pmem/uring.dax buffers >/dev/null 2>&1
stop_watch "$WATCH_PID" journal
kill "$SINK"
wait "$SINK" 2>/dev/null
assert_eq "" "$(cat "$W/journal.out")" "--journal: nothing on stdout"
entry=$(sed -n '/^MESSAGE=/,/^$/p' "$W/journal")
for want in "MESSAGE_ID=7f3c2b1e9d8a4c6fb0e5a2d4c8b6e1f0" "PRIORITY=4" "SYSLOG_IDENTIFIER=daxguard-watch" \
	"DAXGUARD_PID=$(pid_of uring.journal)" "DAXGUARD_COMM=uring" "DAXGUARD_CONSUMER=io_uring" "DAXGUARD_ERRNO=95" \
	"DAXGUARD_ERROR=EOPNOTSUPP" "DAXGUARD_REASON=fsdax" "DAXGUARD_FILE=/mnt/pmem/uring.dax" "DAXGUARD_MOUNT=/mnt/pmem" \
	"DAXGUARD_FSTYPE=ext4" "DAXGUARD_CALLER=io_pin_pages+"; do
	assert_contains "$entry" "$want" "journal entry"
done
assert_eq 1 "$(grep -c '^MESSAGE=.* refused: pid ' "$W/journal")" "journal: one entry for the one refusal"
assert_contains "$(cat "$W/journal.err")" "summary: 1 refusals, dropped 0" "--journal: the summary on stderr"

section "a burst: 100,000 refused and 100,000 successful pins in one process"
# Counted as the lines stream by (the JSON of 100,000 refusals would not fit
# /tmp): refusals per pid and errno, then the summary.
daxguard watch --json --comm pinburst 2>"$W/burst.err" |
	awk '/"type":"refusal"/ { split($0, a, "\"pid\":"); split(a[2], b, ","); split($0, c, "\"error\":\"");
			split(c[2], d, "\""); split($0, f, "\"path\":\""); split(f[2], g, "\"");
			n[b[1] " " d[1] " " g[1]]++ }
		/"type":"(summary|dropped)"/ { print }
		END { for (k in n) print "REFUSALS " k " " n[k] }' >"$W/burst.out" &
n=300
until grep -q 'watching long-term pins' "$W/burst.err"; do
	((n-- > 0)) || fail "burst watch not attached: $(cat "$W/burst.err")"
	sleep 0.1
done
wpid=$(pidof daxguard)
rss0=$(awk '/^VmRSS/ { print $2 }' "/proc/$wpid/status")
pinburst --file /mnt/pmem/burst --refused 100000 --ok 100000 >"$W/pinburst" 2>&1 || fail "pinburst: $(cat "$W/pinburst")"
cat "$W/pinburst"
sleep 2
hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$wpid/status")
kill -INT "$wpid"
wait
cat "$W/burst.out"
# A here-string, not < <(...): the guest has no /dev/fd.
read -r bpid refused ok other <<<"$(sed -n 's/^PINBURST pid=\([0-9]*\) refused=\([0-9]*\) ok=\([0-9]*\) other=\([0-9]*\).*/\1 \2 \3 \4/p' "$W/pinburst")"
assert_eq "100000 100000 0" "$refused $ok $other" "pinburst: 100,000 refused, 100,000 registered"
reported=$(awk -v p="$bpid" '$1 == "REFUSALS" && $2 == p && $3 == "EOPNOTSUPP" && $4 == "/mnt/pmem/burst" { print $5 }' "$W/burst.out")
dropped=$(sed -n 's/.*"type":"summary".*"dropped":\([0-9]*\).*/\1/p' "$W/burst.out")
summary_n=$(sed -n 's/.*"type":"summary","refusals":\([0-9]*\).*/\1/p' "$W/burst.out")
echo "reported ${reported:-0}, dropped ${dropped:-?}"
assert_eq 100000 $((${reported:-0} + ${dropped:-0})) "every refusal reported or counted as dropped"
assert_eq 1 "$(grep -c '^REFUSALS ' "$W/burst.out")" "no refusal invented: all from pinburst, EOPNOTSUPP, its file"
assert_eq "${reported:-0}" "$summary_n" "the summary counts what was printed"
echo "watch RSS: ${rss0} KiB attached, ${hwm} KiB peak after the burst"
((hwm < 65536)) || fail "watch's peak RSS ${hwm} KiB exceeds 64 MiB"
ok "watch's peak RSS ${hwm} KiB is under 64 MiB"
((hwm - rss0 < 16384)) || fail "watch grew by $((hwm - rss0)) KiB during the burst"
ok "watch grew by $((hwm - rss0)) KiB during the burst (bounded: under 16 MiB)"

assert_kernel_clean
scenario_done
