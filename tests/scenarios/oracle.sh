#!/bin/bash
# Scenario 1 and 5: the kernel is the oracle. regmatrix registers a matrix of
# regions on rxe0 once without daxguard (what Linux decides) and once with
# libdaxguard.so preloaded in front of a pass-through spy. daxguard must refuse
# exactly where the kernel says EOPNOTSUPP, before the provider is called (the
# spy sees no call), and forward everything else unchanged. `daxguard check`
# must agree on the same files, and report the lookup path this kernel has.
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
SHIM=/opt/daxguard/lib/libdaxguard.so
for f in "$SHIM" "$BIN/regmatrix" "$BIN/libdaxspy.so" "$BIN/daxguard"; do require_file "$f" "build with tests/all"; done
W=$(mktemp -d /tmp/oracle.XXXXXX)
ROWS=()

# Runs one matrix: kernel alone, then shim + spy; asserts and records rows.
# Regions named *_cow are MAP_PRIVATE DAX pages already copied on write: the
# kernel's fast GUP path may accept them; daxguard refuses (docs/design.md).
matrix() { # label spec...
	local label=$1 i name kern shim action
	shift
	regmatrix --device "$RDMA_DEV" "$@" >"$W/kernel" 2>"$W/kernel.err" || fail "$label: regmatrix (no shim): $(cat "$W/kernel.err")"
	rm -f "$W/spy" "$W/audit"
	DAXSPY_LOG=$W/spy DAXGUARD_LOG=$W/audit LD_PRELOAD=$SHIM:$BIN/libdaxspy.so \
		regmatrix --device "$RDMA_DEV" "$@" >"$W/shim" 2>"$W/shim.err" || fail "$label: regmatrix (shim): $(cat "$W/shim.err")"
	mapfile -t K <"$W/kernel"
	mapfile -t S <"$W/shim"
	# No process substitution: the guest has no /dev/fd.
	sed -n 's/.*"action":"\([a-z_]*\)".*/\1/p' "$W/audit" >"$W/actions"
	mapfile -t A <"$W/actions"
	assert_eq "$#" "${#K[@]}" "$label: kernel answers"
	assert_eq "$#" "${#A[@]}" "$label: audit records (one per registration)"
	local forwarded=0
	for ((i = 0; i < $#; i++)); do
		name=${K[i]%% *} kern=${K[i]#* } shim=${S[i]#* } action=${A[i]}
		[[ $action == forwarded ]] && forwarded=$((forwarded + 1))
		if [[ $kern == EOPNOTSUPP ]]; then
			assert_eq "EOPNOTSUPP refused" "$shim $action" "$label/$name: daxguard where the kernel says EOPNOTSUPP"
		elif [[ $name == *_cow ]]; then
			assert_eq "EOPNOTSUPP refused" "$shim $action" "$label/$name: daxguard refuses private DAX pages (kernel: $kern)"
		else
			assert_eq "$kern forwarded" "$shim $action" "$label/$name: daxguard forwards, same answer as the kernel"
		fi
		ROWS+=("$(printf '%-8s %-18s %-11s %-11s %s' "$label" "$name" "$kern" "$shim" "$action")")
	done
	assert_eq "$forwarded" "$(grep -c . "$W/spy" 2>/dev/null || echo 0)" "$label: provider calls seen by the spy (refusals never reach it)"
	assert_contains "$(cat "$W/shim.err")" "daxguard: refused" "$label: refusal message"
}

# daxguard check's verdict on a file: exit 0 registrable, 1 refused.
check_verdict() { # path want-exit
	local rc=0
	daxguard check "$1" >"$W/check" 2>&1 || rc=$?
	[[ $rc == "$2" ]] || fail "daxguard check $1 exited $rc, expected $2: $(cat "$W/check")"
	ok "daxguard check $1 exited $2"
}

section "ext4 dax=always on pmem, device-DAX, tmpfs, memfd, non-DAX ext4"
make_file /mnt/pmem/cow 2
matrix ext4dax \
	anon=anon:2M heap=heap:2M \
	dax_shared=file:/mnt/pmem/shared:2M dax_private=file:/mnt/pmem/private:2M:private \
	dax_cow=file:/mnt/pmem/cow:2M:private:touch \
	devdax=devdax:/dev/dax1.0:2M tmpfs=file:/tmp/tmpfs:2M memfd=memfd:2M \
	ext4=file:/mnt/ext4/plain:2M span=span:/mnt/pmem/span:2M deleted=deleted:/mnt/pmem/deleted:2M
assert_contains "$(cat "$W/shim.err")" "/mnt/pmem/shared is on filesystem-DAX (ext4 on /dev/pmem0 at /mnt/pmem, dax=always)" "message names file and mount"
check_verdict /mnt/pmem/shared 1
check_verdict /tmp/tmpfs 0
check_verdict /mnt/ext4/plain 0
check_verdict /dev/dax1.0 0

section "lookup path on $KERNEL_VERSION"
json=$(daxguard check --json /mnt/pmem/shared)
if kernel_at_least 6 11; then want=procmap_query; else want=maps; fi
assert_contains "$json" "\"lookup\": \"$want\"" "daxguard check --json lookup"
# The shim's own forced paths agree with each other on the same matrix.
for path in maps query; do
	[[ $path == query && $want == maps ]] && continue
	DAXGUARD_LOOKUP=$path LD_PRELOAD=$SHIM regmatrix --device "$RDMA_DEV" \
		a=anon:2M d=file:/mnt/pmem/shared:2M t=file:/tmp/tmpfs:2M s=span:/mnt/pmem/span:2M >"$W/path.$path" 2>/dev/null
	assert_eq "a ok|d EOPNOTSUPP|t ok|s EOPNOTSUPP|" "$(tr '\n' '|' <"$W/path.$path")" "DAXGUARD_LOOKUP=$path verdicts"
done

section "ext4 dax=inode: per-file DAX flag"
pmem_remake ext4 inode
mkdir -p /mnt/pmem/daxdir /mnt/pmem/plaindir
set_dax_flag on /mnt/pmem/daxdir
make_file /mnt/pmem/daxdir/f 2
make_file /mnt/pmem/plaindir/f 2
file_is_dax /mnt/pmem/daxdir/f || fail "dax=inode: flagged file is not DAX"
file_is_dax /mnt/pmem/plaindir/f && fail "dax=inode: unflagged file is DAX"
matrix inode flagged=file:/mnt/pmem/daxdir/f:2M unflagged=file:/mnt/pmem/plaindir/f:2M
check_verdict /mnt/pmem/daxdir/f 1
check_verdict /mnt/pmem/plaindir/f 0

section "xfs dax=always on pmem"
pmem_remake xfs always
matrix xfs xfs_shared=file:/mnt/pmem/x:2M anon=anon:2M
check_verdict /mnt/pmem/x 1
pmem_remake ext4 always

section "the matrix"
printf '%-8s %-18s %-11s %-11s %s\n' setup region kernel daxguard action
printf '%s\n' "${ROWS[@]}"
assert_kernel_clean
scenario_done
