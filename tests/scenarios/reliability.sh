#!/bin/bash
# Reliability of the preloaded shim against real fs-DAX and rxe0: many
# threads registering while the neighbouring mappings churn, with every
# answer and every audit record counted; the events of a process's life
# (fork, vfork+exec, closefrom, late dlopen, a first-registration race); and
# hostile surroundings (no /proc, renamed/unlinked/over-mounted files, odd
# names, another mount namespace, setuid).
#   tests/guest/run tests/scenarios/reliability.sh [ITERS]
# ITERS: registrations per stress thread (default 2000; 16 threads; a
# quarter of that for the maps-text pass).
# Needs: cargo build --release -p daxguard; make -C tests/c.
# shellcheck disable=SC2317 # the ns_* functions are called by name, through --in-ns
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

SCENARIO=$(realpath "$0")

# --- helpers ---------------------------------------------------------------------

# Checks that every line of an audit log is one complete flat JSON object
# with the 23 keys Record::to_json writes, and that the file ends with a
# newline (no torn record). Prints the number of records.
check_records() { # log what
	local out
	[[ ! -s $1 || $(tail -c1 "$1" | od -An -c | tr -d ' ') == '\n' ]] || fail "$2: log does not end with a newline"
	# Escaped characters, then strings, are folded away; what is left of a
	# record must be {S:N,S:V,...} with exactly 22 commas.
	out=$(awk '{
		l = $0
		gsub(/\\./, "", l)
		gsub(/"[^"]*"/, "S", l)
		ok = l ~ /^[{]S:[0-9.]+(,S:(S|-?[0-9]+|null))*[}]$/ && gsub(/,/, ",", l) == 22 && index($0, "{\"time\":") == 1
		if (!ok && bad++ < 3) print "bad record " NR ": " $0 > "/dev/stderr"
	} END { print NR, bad + 0 }' "$1")
	[[ ${out#* } == 0 ]] || fail "$2: ${out#* } of ${out% *} records are not complete JSON objects"
	echo "${out% *}"
}

# The value of KEY=N in a line of KEY=N words.
field() { # line key
	local w
	for w in $1; do
		[[ $w == "$2="* ]] && echo "${w#*=}" && return
	done
	fail "no $2= in: $1"
}

# Runs one life CASE with the audit log on; checks its PASS/FAIL lines and
# that every registration it made has exactly one record, each refusal a
# refused record. Sets LIFE_OUT (stdout) and LIFE_ERR (stderr).
life_case() { # what life-args...
	local what=$1 log=/tmp/life-$RANDOM.jsonl regs refusals records refused rc=0
	shift
	LIFE_OUT=$(DAXGUARD_LOG=$log LD_PRELOAD=$DAXGUARD_SO timeout -k 5 120 \
		life --device "$RDMA_DEV" "$@" 2>/tmp/life.err) || rc=$?
	LIFE_ERR=$(cat /tmp/life.err)
	printf '%s\n' "$LIFE_OUT" | sed "s/^/  [$what] /"
	assert_not_contains "$LIFE_OUT" "FAIL " "$what: life output"
	assert_eq 0 "$rc" "$what: life exit status"
	regs=$(grep -c '^PASS reg ' <<<"$LIFE_OUT")
	refusals=$(grep -c '^PASS reg .*: EOPNOTSUPP$' <<<"$LIFE_OUT")
	records=$(check_records "$log" "$what")
	refused=$(grep -c '"action":"refused"' "$log")
	assert_eq "$regs" "$records" "$what: audit records (one per registration)"
	assert_eq "$refusals" "$refused" "$what: refused records (one per EOPNOTSUPP: the shim's, not the kernel's)"
	rm -f "$log"
}

# `life mapwait` on FILE in the background, stdin on a fifo; returns at READY.
mapwait_start() { # file [env...]
	MW_DIR=$(mktemp -d /tmp/mw.XXXXXX)
	mkfifo "$MW_DIR/in"
	env "${@:2}" LD_PRELOAD="$DAXGUARD_SO" timeout -k 5 120 \
		life --device "$RDMA_DEV" --dax "$1" mapwait <"$MW_DIR/in" >"$MW_DIR/out" 2>"$MW_DIR/err" &
	MW_PID=$!
	exec {MW_FD}>"$MW_DIR/in"
	local n=300
	until grep -q '^READY' "$MW_DIR/out"; do
		((n-- > 0)) || fail "life mapwait never got READY: $(cat "$MW_DIR/err")"
		sleep 0.1
	done
}

# Lets the mapwait go on; sets MW_OUT, MW_ERR and MW_RC.
mapwait_finish() {
	echo go >&"$MW_FD"
	exec {MW_FD}>&-
	MW_RC=0
	wait "$MW_PID" || MW_RC=$?
	MW_OUT=$(cat "$MW_DIR/out")
	MW_ERR=$(cat "$MW_DIR/err")
	rm -rf "$MW_DIR"
}

# The mapwait answered: the file refused (by the shim, named in its message),
# the anonymous control registered.
mapwait_refused() { # what name-in-message
	assert_eq 0 "$MW_RC" "$1: life mapwait exit status"
	assert_contains "$MW_OUT" "PASS reg mapwait: dax pid=$MW_PID: EOPNOTSUPP" "$1: registration"
	assert_contains "$MW_OUT" "PASS reg mapwait: anon pid=$MW_PID: ok" "$1: anonymous control"
	assert_contains "$MW_ERR" "daxguard: refused ibv_reg_mr_iova2(" "$1: stderr"
	assert_contains "$MW_ERR" "$2 is on filesystem-DAX" "$1: stderr"
}

# Run inside a private mount namespace (unshare -m): the file is mapped, then
# /mnt/pmem is covered by a tmpfs holding a non-DAX file of the same name.
ns_overmount() {
	make_file /mnt/pmem/over 1
	mapwait_start /mnt/pmem/over
	mount -t tmpfs none /mnt/pmem || fail "mount tmpfs over /mnt/pmem"
	echo plain >/mnt/pmem/over
	mapwait_finish
	mapwait_refused "over-mounted after mmap (the path now names a tmpfs file)" /mnt/pmem/over
	umount /mnt/pmem
}

# Run inside a private mount namespace: the DAX filesystem is only reachable
# at another path (bind mount), its usual mount point gone.
ns_elsewhere() {
	mkdir -p /srv/pm
	mount --bind /mnt/pmem /srv/pm || fail "bind mount /mnt/pmem at /srv/pm"
	umount -l /mnt/pmem || fail "umount /mnt/pmem in the namespace"
	[[ ! -e /mnt/pmem/lost+found ]] || fail "/mnt/pmem still mounted in the namespace"
	make_file /srv/pm/elsewhere 1
	mapwait_start /srv/pm/elsewhere
	mapwait_finish
	mapwait_refused "mount namespace where the DAX fs is at /srv/pm" /srv/pm/elsewhere
	assert_contains "$MW_ERR" "at /srv/pm, dax=always" "mount named as this namespace sees it"
}

# Run inside a private mount namespace with an empty /proc.
ns_noproc() {
	local log=/tmp/noproc.jsonl out err
	mount -t tmpfs none /proc || fail "mount tmpfs on /proc"
	[[ ! -e /proc/self/maps ]] || fail "/proc/self/maps still there"
	make_file /mnt/pmem/noproc 2
	out=$(DAXGUARD_LOG=$log LD_PRELOAD=$DAXGUARD_SO entrypoints --device "$RDMA_DEV" --file /mnt/pmem/noproc \
		macro iova2 2>/tmp/noproc.err)
	err=$(cat /tmp/noproc.err)
	# Forwarded unchecked (the documented policy); the kernel refuses it itself.
	assert_contains "$out" "ENTRY macro result=fail errno=EOPNOTSUPP" "no /proc: fs-DAX macro"
	assert_contains "$out" "ENTRY iova2 result=fail errno=EOPNOTSUPP" "no /proc: fs-DAX iova2"
	assert_eq 1 "$(grep -c 'cannot inspect mappings' <<<"$err")" "no /proc: 'cannot inspect mappings' said once"
	assert_not_contains "$err" "daxguard: refused" "no /proc: stderr"
	out=$(LD_PRELOAD=$DAXGUARD_SO entrypoints --device "$RDMA_DEV" --anon macro 2>/dev/null)
	assert_contains "$out" "ENTRY macro result=ok" "no /proc: anonymous"
	assert_eq 2 "$(check_records "$log" "no /proc")" "no /proc: records"
	assert_eq 2 "$(grep -c '"reason":"cannot_inspect","file":null,"mount":null,"action":"forwarded","errno":95' "$log")" \
		"no /proc: records say cannot_inspect, forwarded, EOPNOTSUPP"
	umount /proc
}

if [[ ${1:-} == --in-ns ]]; then
	"$2"
	exit 0
fi

# Runs one of the ns_* functions above in a private mount namespace.
in_namespace() { # function
	local rc=0
	unshare -m --propagation private bash "$SCENARIO" --in-ns "$1" || rc=$?
	[[ $rc == 0 ]] || fail "$1 (in a mount namespace) failed"
	ok "$1 (in a mount namespace) passed"
}

# Linux 6.11+ answers ioctl(PROCMAP_QUERY).
has_procmap_query() {
	kernel_at_least 6 11
}

# --- the scenario ------------------------------------------------------------------

[[ -e $DAXGUARD_SO ]] || skip "libdaxguard.so not built (cargo build --release -p daxguard)"
for prog in stress life entrypoints; do
	command -v "$prog" >/dev/null || skip "$prog not built (make -C tests/c)"
done
ITERS=${1:-2000}
THREADS=16
cd /tmp || fail "cd /tmp"

# One stress run with the audit log on, every answer and record counted.
stress_run() { # DAXGUARD_LOOKUP-value iterations
	local log=/tmp/stress.jsonl start=$SECONDS rc=0 out line regs records ITERS=$2
	out=$(DAXGUARD_LOOKUP=$1 DAXGUARD_LOG=$log DAXGUARD_QUIET=1 LD_PRELOAD=$DAXGUARD_SO timeout -k 5 300 \
		stress --device "$RDMA_DEV" --dax-file /mnt/pmem/stress --threads "$THREADS" --iters "$ITERS" \
		--churn-dir /tmp 2>&1) || rc=$?
	echo "$out"
	echo "stress took $((SECONDS - start)) s"
	[[ $rc != 124 && $rc != 137 ]] || fail "stress hung (killed by timeout after 300 s)"
	assert_eq 0 "$rc" "stress exit status (no crash, no wrong answer)"
	line=$(grep '^STRESS ' <<<"$out")
	regs=$(field "$line" registrations)
	assert_eq $((THREADS * ITERS)) "$regs" "registrations made"
	assert_eq 0 "$(field "$line" anon_bad)" "anonymous registrations that failed"
	assert_eq 0 "$(field "$line" dax_bad)" "fs-DAX registrations not refused"
	assert_eq $((THREADS * ITERS / 2)) "$(field "$line" anon_good)" "anonymous registrations that succeeded"
	assert_eq $((THREADS * ITERS / 2)) "$(field "$line" dax_good)" "fs-DAX registrations refused (EOPNOTSUPP)"
	records=$(check_records "$log" stress)
	assert_eq "$regs" "$records" "audit records (complete JSON objects, one per registration)"
	# The shim's refusals, not the kernel's: a range the shim misjudged
	# would be forwarded and refused by the kernel with the same errno.
	assert_eq "$(field "$line" dax_good)" "$(grep -c '"verdict":"fsdax","reason":"fsdax","file":"/mnt/pmem/stress","mount":"ext4 on /dev/pmem0 at /mnt/pmem, dax=always","action":"refused","errno":95,' "$log")" \
		"refused records (verdict fsdax, the file and mount named)"
	assert_eq "$(field "$line" anon_good)" "$(grep -c '"verdict":"allow","reason":"not_fsdax","file":null,"mount":null,"action":"forwarded","errno":0,' "$log")" \
		"forwarded anonymous records with errno 0"
	echo "figures: lookup=$1 threads=$THREADS registrations=$regs records=$records churn_ops=$(field "$line" churn_ops) seconds=$(field "$line" seconds)"
	rm -f "$log"
}

make_file /mnt/pmem/stress 1
section "concurrency: $THREADS threads x $ITERS registrations, neighbours churning, audit log on (PROCMAP_QUERY where the kernel has it)"
stress_run auto "$ITERS"
# Reading maps text while VMAs change is the fragile path (a read may see a
# VMA twice or not at all across read() boundaries); it is also slower.
section "concurrency: $THREADS threads x $((ITERS / 4)), reading maps text"
stress_run maps $((ITERS / 4))

section "process life: fork, vfork+exec, late dlopen, first-registration race"
make_file /mnt/pmem/life 1
life_case dlopen --dax /mnt/pmem/life dlopen
assert_contains "$LIFE_ERR" "cannot find libibverbs' ibv_reg_mr_iova2" "dlopen: said the real function was missing"
life_case fork --dax /mnt/pmem/life fork
life_case vfork --dax /mnt/pmem/life vfork
life_case race --dax /mnt/pmem/life race 10

section "hostile: files renamed, unlinked or over-mounted after mmap"
make_file /mnt/pmem/ren 1
mapwait_start /mnt/pmem/ren
mv /mnt/pmem/ren /mnt/pmem/ren2
mapwait_finish
mapwait_refused "renamed after mmap" /mnt/pmem/ren2

make_file /mnt/pmem/unl 1
mapwait_start /mnt/pmem/unl
rm /mnt/pmem/unl
make_file /mnt/pmem/unl 1 # the same path, another inode
mapwait_finish
mapwait_refused "unlinked after mmap, path reused" "/mnt/pmem/unl (deleted)"

in_namespace ns_overmount

section "hostile: another mount namespace, no /proc"
in_namespace ns_elsewhere
in_namespace ns_noproc

section "hostile: file names with spaces, ' (deleted)', a backslash"
for name in "with space" "fake (deleted)" 'back\012slash' "tab	here"; do
	make_file "/mnt/pmem/$name" 1
	out=$(LD_PRELOAD=$DAXGUARD_SO entrypoints --device "$RDMA_DEV" --file "/mnt/pmem/$name" --len 1M macro 2>/tmp/name.err)
	assert_contains "$out" "ENTRY macro result=fail errno=EOPNOTSUPP" "'$name'"
	assert_contains "$(cat /tmp/name.err)" "daxguard: refused ibv_reg_mr_iova2(" "'$name': stderr"
	# Maps text shows a literal \012 exactly as it shows a newline: only
	# PROCMAP_QUERY (6.11+) gives that name back as it is.
	if [[ $name == *'\012'* ]] && ! has_procmap_query; then
		echo "note: through maps text the message reads: $(tr '\n' '|' </tmp/name.err)"
		continue
	fi
	# Control characters are written as octal escapes (a tab as \011).
	assert_contains "$(cat /tmp/name.err)" "/mnt/pmem/${name//$'\t'/\\011} is on filesystem-DAX" "'$name': the file named"
done
make_file /mnt/pmem/gone 1
mapwait_start "/mnt/pmem/gone"
mv /mnt/pmem/gone "/mnt/pmem/gone (deleted)"
mapwait_finish
mapwait_refused "renamed to end in ' (deleted)' after mmap" "/mnt/pmem/gone (deleted)"

section "security: setuid (AT_SECURE) ignores DAXGUARD_* from the environment"
# The guest's / is 0700 (a temp dir when the initramfs is built): nothing
# below it is reachable for euid 65534 otherwise.
chmod 755 / || fail "chmod 755 /"
libdir=/usr/lib/x86_64-linux-gnu
[[ -d $libdir ]] || libdir=/lib/x86_64-linux-gnu
# glibc preloads into a setuid program only a library named without a
# slash, found in a system directory, with its own set-user-ID bit.
cp "$DAXGUARD_SO" "$libdir/libdaxguard.so" || fail "cannot copy to $libdir"
chmod 4755 "$libdir/libdaxguard.so" || fail "chmod u+s $libdir/libdaxguard.so"
mkdir -p /usr/local/bin
cp "$(command -v entrypoints)" /usr/local/bin/ep-plain
cp "$(command -v entrypoints)" /usr/local/bin/ep-setuid
chown 65534:65534 /usr/local/bin/ep-setuid || fail "chown ep-setuid"
chmod 4755 /usr/local/bin/ep-setuid || fail "chmod u+s ep-setuid"
make_file /mnt/pmem/secure 2
chmod 666 /mnt/pmem/secure
mkdir /tmp/secure && chmod 1777 /tmp/secure
senv=(LD_PRELOAD=libdaxguard.so DAXGUARD_MODE=warn DAXGUARD_LOG=/tmp/secure/plain.jsonl)
out=$(env "${senv[@]}" /usr/local/bin/ep-plain --device "$RDMA_DEV" --file /mnt/pmem/secure macro 2>/tmp/secure.err)
assert_contains "$(cat /tmp/secure.err)" "daxguard: warning: would refuse" "control (not setuid): DAXGUARD_MODE=warn honoured"
assert_eq 1 "$(check_records /tmp/secure/plain.jsonl control)" "control: DAXGUARD_LOG honoured"
# Run by root, owned by uid 65534 with the setuid bit: euid 65534, ruid 0: AT_SECURE.
senv[2]=DAXGUARD_LOG=/tmp/secure/setuid.jsonl
out=$(env "${senv[@]}" /usr/local/bin/ep-setuid --device "$RDMA_DEV" --file /mnt/pmem/secure macro 2>/tmp/secure.err)
assert_contains "$out
$(cat /tmp/secure.err)" "ENTRY macro result=fail errno=EOPNOTSUPP" "setuid: fs-DAX registration"
assert_contains "$(cat /tmp/secure.err)" "daxguard: refused ibv_reg_mr_iova2(" "setuid: the shim refused it (DAXGUARD_MODE=warn ignored)"
[[ ! -e /tmp/secure/setuid.jsonl ]] || fail "setuid: the DAXGUARD_LOG path was created"
ok "setuid: the DAXGUARD_LOG path was never created"
rm -f "$libdir/libdaxguard.so" /usr/local/bin/ep-plain /usr/local/bin/ep-setuid

# The last two checks each run in a subshell, so that one failing does not
# hide the other; the scenario fails after both if either did.
late=()

section "hostile: a file name with a newline"
(
	name=$'new\nline'
	make_file "/mnt/pmem/$name" 1
	out=$(LD_PRELOAD=$DAXGUARD_SO entrypoints --device "$RDMA_DEV" --file "/mnt/pmem/$name" --len 1M macro 2>/tmp/name.err)
	cat /tmp/name.err
	assert_contains "$out" "ENTRY macro result=fail errno=EOPNOTSUPP" "newline in the name"
	assert_contains "$(cat /tmp/name.err)" "daxguard: refused ibv_reg_mr_iova2(" "newline in the name: stderr"
	# A name must not break the one-line message (nor forge a second line).
	assert_eq 1 "$(wc -l </tmp/name.err)" "newline in the name: lines on stderr"
) || late+=("a file name with a newline")

section "process life: closefrom, with the audit log on"
# The shim must not write into descriptors the program opened after closing
# every descriptor (the audit log's number included).
(life_case closefrom --dax /mnt/pmem/life closefrom) || late+=("closefrom with the audit log on")

((${#late[@]} == 0)) || fail "failed: ${late[*]}"
assert_kernel_clean
scenario_done
