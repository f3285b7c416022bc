# shellcheck shell=bash
# Helpers for scenarios running inside the qemu guest. In the guest this file
# is /opt/daxguard/guest/lib.sh; scenarios live in
# /opt/daxguard/scenarios, so the same line works in the guest and the repo:
#   source "$(dirname "$0")/../guest/lib.sh"
# Every assert_* prints one "ok:" line or fails the scenario (exit 1).
# shellcheck disable=SC2034 # PAIR_* are for the sourcing scenario

set -uo pipefail

_ASSERTS=0
_SCENARIO=$(basename "${0%.sh}")

section() {
	printf '\n=== %s ===\n' "$*"
}

# Ends the scenario as failed, with a final count line for log readers.
fail() {
	echo "FAIL: $*" >&2
	echo "$_SCENARIO: $_ASSERTS passed, 1 failed"
	exit 1
}

ok() {
	_ASSERTS=$((_ASSERTS + 1))
	echo "ok: $*"
}

# Call last: prints the count line ("N passed, 0 failed").
scenario_done() {
	echo
	echo "$_SCENARIO: $_ASSERTS passed, 0 failed"
	exit 0
}

# For a scenario that cannot run here (say, no libdaxguard.so built): exits
# 77, which `run` passes on, so a skip is never mistaken for a pass.
skip() {
	echo "SKIP: $*"
	exit 77
}

assert_eq() { # expected actual [what]
	[[ $1 == "$2" ]] || fail "${3:-value}: expected '$1', got '$2'"
	ok "${3:-value} is '$1'"
}

assert_ne() { # unexpected actual [what]
	[[ $1 != "$2" ]] || fail "${3:-value}: expected anything but '$1'"
	ok "${3:-value} is not '$1'"
}

assert_contains() { # haystack needle [what]
	[[ $1 == *"$2"* ]] || fail "${3:-output} lacks '$2'; it was:
$(printf '%s\n' "$1" | tail -n 20)"
	ok "${3:-output} contains '$2'"
}

assert_not_contains() { # haystack needle [what]
	[[ $1 != *"$2"* ]] || fail "${3:-output} contains '$2'; it was:
$(printf '%s\n' "$1" | tail -n 20)"
	ok "${3:-output} lacks '$2'"
}

# Runs a command and checks its exit status: expect_status 0 true
expect_status() { # status command...
	local want=$1 got=0
	shift
	"$@" || got=$?
	[[ $got == "$want" ]] || fail "'$*' exited $got, expected $want"
	ok "'$*' exited $want"
}

# Whether the guest's kernel is at least MAJOR.MINOR (KERNEL_VERSION is uname -r).
kernel_at_least() { # major minor
	local v=${KERNEL_VERSION%%-*} major minor
	major=${v%%.*} minor=${v#*.}
	minor=${minor%%.*}
	((major > $1 || (major == $1 && minor >= $2)))
}

# The memory the V4L2 and io_uring test programs (v4l2cap, uring) map, by
# kind: the flags both take for it.
pinner_mem() { # anon|tmpfs|devdax|fsdax|fsdax-private|fsdax-written|ext4|ext4-private
	case $1 in
	anon) echo "--anon" ;;
	tmpfs) echo "--file /tmp/pin.tmpfs" ;;
	devdax) echo "--devdax $DEVDAX" ;;
	fsdax) echo "--file $PMEM_MNT/pin.shared" ;;
	fsdax-private) echo "--file $PMEM_MNT/pin.private --private" ;;
	fsdax-written) echo "--file $PMEM_MNT/pin.written --private --touch" ;;
	ext4) echo "--file $EXT4_MNT/pin.shared" ;;
	ext4-private) echo "--file $EXT4_MNT/pin.private --private" ;;
	*) fail "pinner_mem: no memory kind $1" ;;
	esac
}

require_file() { # path [why]
	[[ -e $1 ]] || fail "$1 missing${2:+ ($2)}"
}

# --- filesystems ---------------------------------------------------------------

# The dax= mount option of a mount point: always, inode, never or none (no
# option shown; xfs shows none for dax=inode, its default).
mount_dax_mode() { # mountpoint
	local opts
	opts=$(awk -v m="$1" '$5 == m { print $6 "," $NF }' /proc/self/mountinfo | tail -n1)
	case ,$opts, in
	*,dax=always,* | *,dax,*) echo always ;;
	*,dax=inode,*) echo inode ;;
	*,dax=never,*) echo never ;;
	*) echo none ;;
	esac
}

# Whether a file is accessed through DAX right now (statx STATX_ATTR_DAX).
file_is_dax() { # path
	local attrs
	attrs=$(xfs_io -r -c 'statx -r' "$1" 2>/dev/null | awk '$1 == "stat.attributes" { print $3 }')
	[[ -n $attrs ]] && (((attrs & 0x00200000) != 0))
}

# Sets or clears the per-inode DAX flag (FS_XFLAG_DAX). It takes effect for
# new files in a flagged directory, or on a file once its inode is evicted:
# set it on the directory before creating files, or call drop_inode_cache.
set_dax_flag() { # on|off path
	local op=+x
	[[ $1 == on ]] || op=-x
	xfs_io -c "chattr $op" "$2" || fail "chattr $op $2"
}

drop_inode_cache() {
	sync
	echo 2 >/proc/sys/vm/drop_caches
}

# Re-creates /mnt/pmem on /dev/pmem0: FS is ext4 or xfs, DAX is the dax=
# mount option (always, inode, never) or none for no option at all.
# pmem_remake ext4 always restores the state every scenario starts with.
pmem_remake() { # fs dax
	local fs=$1 dax=$2 opt=()
	umount /mnt/pmem 2>/dev/null
	case $fs in
	ext4) mkfs.ext4 -q -F -b 4096 /dev/pmem0 || fail "mkfs.ext4 /dev/pmem0" ;;
	# reflink=0: older kernels refuse DAX on reflink-capable XFS.
	xfs) mkfs.xfs -q -f -m reflink=0 /dev/pmem0 || fail "mkfs.xfs /dev/pmem0" ;;
	*) fail "pmem_remake: unknown filesystem '$fs'" ;;
	esac
	case $dax in
	always | inode | never) opt=(-o "dax=$dax") ;;
	none) ;;
	*) fail "pmem_remake: unknown dax mode '$dax'" ;;
	esac
	mount -t "$fs" "${opt[@]}" /dev/pmem0 /mnt/pmem || fail "mount $fs ${opt[*]} /dev/pmem0"
	local got
	got=$(mount_dax_mode /mnt/pmem)
	# dax=inode is the default, and xfs does not show it in mountinfo.
	[[ $got == "$dax" || ($dax == inode && $got == none) || $dax == none ]] ||
		fail "/mnt/pmem: mountinfo says dax=$got, wanted $dax"
}

# Re-creates the non-DAX ext4 on the RAM disk at /mnt/ext4.
ext4_remake() {
	umount /mnt/ext4 2>/dev/null
	mkfs.ext4 -q -F -b 4096 /dev/ram0 || fail "mkfs.ext4 /dev/ram0"
	mount /dev/ram0 /mnt/ext4 || fail "mount /dev/ram0"
}

# A file of SIZE MiB filled with zeros (blocks allocated, not sparse).
make_file() { # path size_mib
	dd if=/dev/zero of="$1" bs=1M count="$2" status=none || fail "cannot write $1"
}

# --- processes -------------------------------------------------------------------

# Waits up to $2 seconds (default 30) for a TCP listener on port $1.
wait_listen() { # port [seconds]
	local hex n=$((${2:-30} * 10))
	hex=$(printf ':%04X ' "$1")
	until grep -q "$hex.* 0A " /proc/net/tcp /proc/net/tcp6 2>/dev/null; do
		((n-- > 0)) || return 1
		sleep 0.1
	done
}

# Runs a client/server pair (perftest, rping, pingpong style): the server in
# the background, the client once the server listens on PORT. Output goes to
# PAIR_SERVER_OUT / PAIR_CLIENT_OUT, exit statuses to PAIR_SERVER_RC /
# PAIR_CLIENT_RC. Each side is killed after PAIR_TIMEOUT seconds (default 120).
# A server that never listens (it failed early) gets no client run
# (PAIR_CLIENT_RC=-1).
#   run_pair 18515 ib_write_bw -d rxe0 -n 5 -- ib_write_bw -d rxe0 -n 5 127.0.0.1
run_pair() { # port server-command... -- client-command...
	local port=$1 t=${PAIR_TIMEOUT:-120} dir spid
	local -a srv=() cli=()
	shift
	while (($#)) && [[ $1 != -- ]]; do
		srv+=("$1")
		shift
	done
	(($#)) || fail "run_pair: no -- between server and client"
	shift
	cli=("$@")
	dir=$(mktemp -d /tmp/pair.XXXXXX)
	PAIR_SERVER_OUT=$dir/server PAIR_CLIENT_OUT=$dir/client
	PAIR_CLIENT_RC=-1
	timeout -k 5 "$t" "${srv[@]}" >"$PAIR_SERVER_OUT" 2>&1 &
	spid=$!
	# Also stop waiting if the server already died.
	local n=$((t * 10))
	until wait_listen "$port" 0; do
		if ! kill -0 "$spid" 2>/dev/null || ((n-- <= 0)); then
			break
		fi
		sleep 0.1
	done
	if wait_listen "$port" 0; then
		PAIR_CLIENT_RC=0
		timeout -k 5 "$t" "${cli[@]}" >"$PAIR_CLIENT_OUT" 2>&1 || PAIR_CLIENT_RC=$?
	else
		: >"$PAIR_CLIENT_OUT"
	fi
	# A server whose client never came would wait forever: give it a moment.
	local w=50
	while kill -0 "$spid" 2>/dev/null && ((w-- > 0)); do sleep 0.1; done
	kill "$spid" 2>/dev/null
	PAIR_SERVER_RC=0
	wait "$spid" || PAIR_SERVER_RC=$?
}

# --- daxguard watch ------------------------------------------------------------

# Starts `daxguard watch ARGS` in the background, output in $W/NAME.{out,err}
# ($W: the scenario's own directory); returns once it is attached. Sets WATCH_PID.
start_watch() { # name args...
	local name=$1 n=300
	shift
	daxguard watch "$@" >"$W/$name.out" 2>"$W/$name.err" &
	WATCH_PID=$!
	until grep -q 'watching long-term pins' "$W/$name.err"; do
		kill -0 "$WATCH_PID" 2>/dev/null || fail "watch $name exited early: $(cat "$W/$name.err")"
		((n-- > 0)) || fail "watch $name not attached after 30 s: $(cat "$W/$name.err")"
		sleep 0.1
	done
}

# SIGINT, then its exit status must be 0.
stop_watch() { # pid name
	kill -INT "$1"
	local rc=0
	wait "$1" || rc=$?
	assert_eq 0 "$rc" "watch $2 stops cleanly on SIGINT"
}

# Fails if the kernel logged a BUG, an oops or a WARNING so far.
assert_kernel_clean() {
	local bad
	bad=$(dmesg | grep -E 'BUG:|Oops|WARNING:|general protection' | head -n 5)
	[[ -z $bad ]] || fail "kernel log has: $bad"
	ok "kernel log has no BUG/oops/WARNING"
}

# The median of the numbers given as arguments, or else on stdin one per
# line (the mean of the middle two for an even count): benchmarks' summaries.
median() {
	if (($#)); then printf '%s\n' "$@"; else cat; fi | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
