#!/bin/bash
# daxguard in front of the other long-term pinners (issue 13), on the same
# programs and memory as pinners_oracle.sh, with libdaxguard.so preloaded:
#   - V4L2 USERPTR buffers at VIDIOC_QBUF / VIDIOC_PREPARE_BUF, through
#     glibc ioctl() and through libv4l2 (whose calls, and its mplane
#     plugin's, are syscall(SYS_ioctl));
#   - io_uring fixed buffers through liburing's functions and through
#     syscall(SYS_io_uring_register).
# fs-DAX is refused by daxguard first, with its message, and the kernel never
# sees the call; everything else reaches the kernel and gets its answer.
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
SHIM=/opt/daxguard/lib/libdaxguard.so
for f in "$BIN/v4l2cap" "$BIN/uring" "$SHIM"; do require_file "$f" "build with tests/all"; done
W=$(mktemp -d /tmp/pinners.XXXXXX)
new_gup=0
kernel_at_least 6 5 && new_gup=1

guarded() { env "LD_PRELOAD=$SHIM" "$@"; }

# --- V4L2 ----------------------------------------------------------------------

# v4l2cap under the shim; $1 the result it must end with.
v4l2() { # want label args...
	local want=$1 label=$2 rc=0
	shift 2
	guarded v4l2cap --expect "$want" "$@" >"$W/out" 2>"$W/err" || rc=$?
	[[ $rc == 0 ]] || fail "$label: v4l2cap $* exited $rc (wanted $want): $(tail -n 20 "$W/out" "$W/err")"
	ok "$label: $want"
}

section "V4L2 through ioctl(): fs-DAX refused by daxguard, named; the rest reaches the kernel"
for planes in single mplane; do
	p=()
	[[ $planes == mplane ]] && p=(--mplane)
	for at in qbuf prepare_buf; do
		pre=()
		[[ $at == prepare_buf ]] && pre=(--prepare)
		req=VIDIOC_QBUF
		[[ $at == prepare_buf ]] && req=VIDIOC_PREPARE_BUF
		for kind in fsdax fsdax-private; do
			read -ra mem <<<"$(pinner_mem "$kind")"
			v4l2 "EOPNOTSUPP@$at" "ioctl/$planes/$at $kind" "${p[@]}" "${pre[@]}" "${mem[@]}"
			assert_contains "$(cat "$W/err")" "daxguard: refused $req(/dev/video" "$planes/$at $kind: the message names the call and device"
			assert_contains "$(cat "$W/err")" "is on filesystem-DAX" "$planes/$at $kind: and says why"
			assert_contains "$(cat "$W/err")" "use MMAP or DMABUF buffers" "$planes/$at $kind: and what to do"
			[[ $planes == mplane ]] && assert_contains "$(cat "$W/err")" "buffer 0 plane 0:" "mplane: the plane is named"
		done
		for kind in anon tmpfs devdax; do
			read -ra mem <<<"$(pinner_mem "$kind")"
			v4l2 streamed "ioctl/$planes/$at $kind" "${p[@]}" "${pre[@]}" "${mem[@]}"
			assert_eq "4" "$(grep -c '^frame [0-9]*: ok ' "$W/out")" "$planes/$at $kind: frames landed in the buffer"
			assert_eq "" "$(cat "$W/err")" "$planes/$at $kind: daxguard says nothing"
		done
	done
done
# The kernel never saw a refused QBUF.
read -ra mem <<<"$(pinner_mem fsdax)"
strace -f -qq -e trace=ioctl -o "$W/strace" env "LD_PRELOAD=$SHIM" v4l2cap "${mem[@]}" >/dev/null 2>&1
assert_not_contains "$(cat "$W/strace")" "VIDIOC_QBUF" "fs-DAX: no QBUF reached the kernel"
assert_contains "$(cat "$W/strace")" "VIDIOC_REQBUFS" "fs-DAX: the other ioctls did"
read -ra mem <<<"$(pinner_mem "ext4")"
if ((new_gup)); then
	v4l2 EFAULT@qbuf "ioctl ext4 shared (6.5+)" "${mem[@]}"
	assert_contains "$(cat "$W/err")" "failed with EFAULT: Linux 6.5+ refuses writable long-term pins of shared page-cache file mappings" \
		"ext4 shared: the kernel's EFAULT, explained"
else
	v4l2 streamed "ioctl ext4 shared (before 6.5)" "${mem[@]}"
fi

section "V4L2 through libv4l2 (syscall(SYS_ioctl)), the mplane plugin included"
for planes in single mplane; do
	p=()
	[[ $planes == mplane ]] && p=(--mplane)
	read -ra mem <<<"$(pinner_mem "fsdax")"
	v4l2 EOPNOTSUPP@qbuf "libv4l2-noconv/$planes fsdax" --via libv4l2-noconv "${p[@]}" "${mem[@]}"
	assert_contains "$(cat "$W/err")" "daxguard: refused VIDIOC_QBUF(/dev/video" "libv4l2/$planes: refused by daxguard"
	v4l2 streamed "libv4l2-noconv/$planes anon" --via libv4l2-noconv "${p[@]}" --anon
	v4l2 EINVAL@reqbufs "libv4l2 (converting)/$planes fsdax: libv4l2's own answer" --via libv4l2 "${p[@]}" "${mem[@]}"
done

section "V4L2 bad input: the kernel's own answers, with the shim loaded"
wrap=EOVERFLOW
kernel_at_least 6 12 || wrap=EFAULT
want_bad="badfd EBADF|notv4l2 ENOTTY|len0 EINVAL|null EFAULT|unmapped EFAULT|wrap $wrap|index EINVAL|"
for args in "--anon" "--mplane --file $PMEM_MNT/pin.bad" "--via libv4l2-noconv --file $PMEM_MNT/pin.bad"; do
	read -ra a <<<"$args"
	guarded v4l2cap --bad "${a[@]}" >"$W/bad" 2>&1 || fail "v4l2cap --bad $args: $(tail -n 20 "$W/bad")"
	assert_eq "$want_bad" "$(sed -n 's/^bad \([a-z0-9]*\): \(.*\)/\1 \2/p' "$W/bad" | tr '\n' '|')" "shim + v4l2cap --bad $args"
done

# --- io_uring --------------------------------------------------------------------

VIAS=(buffers tags sparse register sys-buffers sys-buffers2 sys-update)
head -c 300000 /dev/urandom >/tmp/pin.src

section "io_uring: fs-DAX refused by daxguard on every path, each with its API's convention"
for kind in fsdax fsdax-private; do
	read -ra mem <<<"$(pinner_mem "$kind")"
	guarded uring "${mem[@]}" "${VIAS[@]}" >"$W/out" 2>"$W/err" || fail "uring $kind: $(tail -n 20 "$W/out" "$W/err")"
	assert_eq "EOPNOTSUPP|EOPNOTSUPP|EOPNOTSUPP|EOPNOTSUPP|EOPNOTSUPP|EOPNOTSUPP|EOPNOTSUPP|" \
		"$(sed -n 's/^register [a-z0-9-]*: //p' "$W/out" | tr '\n' '|')" "uring $kind: every path refused"
	for entry in io_uring_register_buffers io_uring_register_buffers_tags io_uring_register_buffers_update_tag \
		IORING_REGISTER_BUFFERS IORING_REGISTER_BUFFERS2 IORING_REGISTER_BUFFERS_UPDATE; do
		assert_contains "$(cat "$W/err")" "daxguard: refused $entry(" "uring $kind: $entry refused by daxguard"
	done
done
read -ra mem <<<"$(pinner_mem fsdax)"
strace -f -qq -e trace=io_uring_register -o "$W/strace" env "LD_PRELOAD=$SHIM" uring "${mem[@]}" buffers sys-buffers >/dev/null 2>&1
assert_not_contains "$(cat "$W/strace")" "IORING_REGISTER_BUFFERS," "fs-DAX: no buffer registration reached the kernel"

section "io_uring: anonymous and tmpfs register, READ_FIXED returns the file's bytes"
for kind in anon tmpfs; do
	read -ra mem <<<"$(pinner_mem "$kind")"
	guarded uring --read /tmp/pin.src "${mem[@]}" "${VIAS[@]}" >"$W/out" 2>"$W/err" || fail "uring $kind: $(tail "$W/out" "$W/err")"
	for via in "${VIAS[@]}"; do
		assert_eq "ok, ok bytes=300000" "$(sed -n "s/^register $via: //p" "$W/out"), $(sed -n "s/^read_fixed $via: //p" "$W/out")" \
			"uring $kind/$via"
	done
	assert_eq "" "$(cat "$W/err")" "uring $kind: daxguard says nothing"
done

section "io_uring: what the kernel refuses by its own rules is forwarded and explained"
read -ra mem <<<"$(pinner_mem "devdax")"
guarded uring "${mem[@]}" buffers >"$W/out" 2>"$W/err" || true
if ((new_gup)); then
	assert_eq "ok" "$(sed -n 's/^register buffers: //p' "$W/out")" "device-DAX registers on 6.5+"
else
	assert_eq "EOPNOTSUPP" "$(sed -n 's/^register buffers: //p' "$W/out")" "device-DAX: the kernel's own refusal before 6.5"
	assert_contains "$(cat "$W/err")" "io_uring before Linux 6.5 refuses fixed buffers backed by any file but tmpfs and hugetlbfs" \
		"device-DAX before 6.5: explained, not pre-empted"
fi
read -ra mem <<<"$(pinner_mem "fsdax")"
guarded uring --mixed "${mem[@]}" buffers sparse sys-update >"$W/out" 2>"$W/err" || true
assert_eq "EOPNOTSUPP|EOPNOTSUPP|EOPNOTSUPP|" "$(sed -n 's/^register [a-z-]*: //p' "$W/out" | tr '\n' '|')" \
	"an fs-DAX iovec after an anonymous one: daxguard refuses the whole call (the kernel would update the first)"

section "io_uring bad input: the kernel's own answers, with the shim loaded"
want_bad="badfd EBADF|notring EOPNOTSUPP|len0 EFAULT|null EFAULT|null0 ok|unmapped EFAULT|wrap EOVERFLOW|nr0 EINVAL|badarray EFAULT|"
for args in "--anon" "--file $PMEM_MNT/pin.bad"; do
	read -ra a <<<"$args"
	guarded uring "${a[@]}" --bad >"$W/bad" 2>&1 || fail "uring --bad $args: $(tail -n 20 "$W/bad")"
	for api in sys lib; do
		assert_eq "$want_bad" "$(sed -n "s/^bad \([a-z0-9]*\) $api: \(.*\)/\1 \2/p" "$W/bad" | tr '\n' '|')" "shim + uring --bad $args ($api)"
	done
done

section "modes and the audit record name the consumer"
read -ra mem <<<"$(pinner_mem "fsdax")"
env "LD_PRELOAD=$SHIM" DAXGUARD_LOG="$W/log" v4l2cap --expect EOPNOTSUPP@qbuf "${mem[@]}" >/dev/null 2>&1 || fail "audit: v4l2cap"
env "LD_PRELOAD=$SHIM" DAXGUARD_LOG="$W/log" uring "${mem[@]}" buffers sys-buffers >/dev/null 2>&1 || fail "audit: uring"
assert_eq 3 "$(grep -c '"consumer":"v4l2","entry":"VIDIOC_QBUF".*"action":"refused"' "$W/log")" "audit: three V4L2 refusals"
assert_eq 2 "$(grep -c '"consumer":"io_uring".*"action":"refused"' "$W/log")" "audit: two io_uring refusals"
assert_contains "$(grep '"consumer":"v4l2"' "$W/log" | head -n1)" "\"file\":\"$PMEM_MNT/pin.shared\"" "audit: the file"
env "LD_PRELOAD=$SHIM" DAXGUARD_MODE=warn v4l2cap --expect EOPNOTSUPP@qbuf "${mem[@]}" >/dev/null 2>"$W/err" ||
	fail "warn: the kernel's own EOPNOTSUPP: $(cat "$W/err")"
assert_contains "$(cat "$W/err")" "daxguard: warning: would refuse VIDIOC_QBUF(" "warn: forwarded, said"
env "LD_PRELOAD=$SHIM" DAXGUARD_MODE=odp uring "${mem[@]}" buffers tags >"$W/out" 2>"$W/err" || true
assert_eq "EOPNOTSUPP|EOPNOTSUPP|" "$(sed -n 's/^register [a-z-]*: //p' "$W/out" | tr '\n' '|')" "odp mode: io_uring still refused"
assert_eq 1 "$(grep -c 'DAXGUARD_MODE=odp does not apply to io_uring pins' "$W/err")" "odp mode: said once"

section "daxguard check --for and scan --for: each consumer's answer"
make_file "$PMEM_MNT/pin.check" 1
out=$(daxguard check --for v4l2 "$PMEM_MNT/pin.check") && fail "check --for v4l2 fs-DAX exited 0"
assert_contains "$out" "VIDIOC_QBUF of a USERPTR buffer fails with EOPNOTSUPP" "check --for v4l2: the consumer's call"
assert_contains "$out" "use MMAP or DMABUF buffers" "check --for v4l2: the consumer's remedy"
expect_status 1 daxguard check --for io_uring "$PMEM_MNT/pin.check"
assert_eq '"io_uring"' "$(daxguard check --json --for io_uring "$PMEM_MNT/pin.check" | tr -d ' \n' | grep -o '"consumer":"[a-z_]*"' | cut -d: -f2)" \
	"check --json names the consumer"
if ((new_gup)); then
	expect_status 0 daxguard check --for io_uring "$DEVDAX"
else
	out=$(daxguard check --for io_uring "$DEVDAX") && fail "check --for io_uring device-DAX before 6.5 exited 0"
	assert_contains "$out" "io_uring before Linux 6.5 takes only anonymous, tmpfs and hugetlbfs memory" \
		"check --for io_uring before 6.5: the kernel's own rule"
	expect_status 0 daxguard check --for rdma "$DEVDAX"
fi
make_file "$EXT4_MNT/pin.scan" 1
sleep 60 | regmatrix --device "$RDMA_DEV" --hold "e=file:$EXT4_MNT/pin.scan:1M" a=anon:1M >"$W/hold" 2>&1 &
for _ in $(seq 100); do grep -q READY "$W/hold" && break; sleep 0.1; done
holder=$(sed -n 's/^READY pid=\([0-9]*\).*/\1/p' "$W/hold")
[[ -n $holder ]] || fail "regmatrix --hold did not start: $(cat "$W/hold")"
scan=$(daxguard scan --json --pid "$holder" | tr -d ' \n' || true)
assert_contains "$scan" '"consumer":null' "scan without --for"
ext4_vma=$(daxguard scan --json --pid "$holder" | tr -d ' \n' | grep -o "$EXT4_MNT/pin.scan\"[^]]*\"refused_by\":\[[^]]*\]" || true)
if ((new_gup)); then
	assert_contains "$ext4_vma" '"refused_by":[]' "scan 6.5+: an ext4 mapping is refused by no consumer's EOPNOTSUPP"
	assert_not_contains "$(daxguard scan --pid "$holder" --for io_uring || true)" "REFUSED (io_uring" "scan --for io_uring: nothing marked"
else
	assert_contains "$ext4_vma" '"refused_by":["io_uring"]' "scan before 6.5: an ext4 mapping is refused to io_uring"
	assert_contains "$(daxguard scan --pid "$holder" --for io_uring | grep "$EXT4_MNT/pin.scan" || true)" \
		"REFUSED (io_uring before 6.5: file-backed)" "scan --for io_uring marks it"
fi
assert_not_contains "$(daxguard scan --pid "$holder" | grep "$EXT4_MNT/pin.scan" || true)" "REFUSED" "scan without --for marks fs-DAX only"
kill "$holder" 2>/dev/null || true

assert_kernel_clean
scenario_done
