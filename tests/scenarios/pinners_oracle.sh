#!/bin/bash
# The kernel is the oracle for two more long-term pinners, without daxguard:
#   - V4L2 USERPTR capture on vivid: vb2_vmalloc_get_userptr() pins the user
#     buffer with pin_user_pages_fast(FOLL_LONGTERM | FOLL_WRITE) at
#     VIDIOC_QBUF or VIDIOC_PREPARE_BUF (tests/c/v4l2cap.c);
#   - io_uring fixed buffers: io_pin_pages() pins them with FOLL_LONGTERM at
#     IORING_REGISTER_BUFFERS{,2,_UPDATE} (tests/c/uring.c).
# What Linux answers per kind of memory, through each way a program reaches
# the call, is what a daxguard interposer for these calls must reproduce.
# Differences between kernels (keyed on KERNEL_VERSION, both from the Linux
# 6.5 GUP work): writable long-term pins of shared page-cache files became
# EFAULT (writable_file_mapping_allowed()), and io_uring dropped its own
# "file-backed memory other than shmem/hugetlbfs: EOPNOTSUPP" check in
# io_pin_pages() for GUP's rules.
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
for f in "$BIN/v4l2cap" "$BIN/uring"; do require_file "$f" "make -C tests/c"; done
[[ -z ${LD_PRELOAD:-} ]] || fail "LD_PRELOAD is set ($LD_PRELOAD): the oracle runs without a preload"
W=$(mktemp -d /tmp/pinners.XXXXXX)
ROWS=()

# 6.5+: GUP refuses writable long-term pins of shared page-cache files, and
# io_uring leaves file-backed memory to GUP.
new_gup=0
kernel_at_least 6 5 && new_gup=1

KINDS=(anon tmpfs devdax fsdax fsdax-private fsdax-written ext4 ext4-private)

# --- V4L2 USERPTR ------------------------------------------------------------

# What the kernel answers a V4L2 USERPTR buffer on this memory: "streamed"
# or the errno of the pin. fs-DAX: EOPNOTSUPP, but a MAP_PRIVATE page already
# written is an anonymous copy, which GUP's fast path pins without a look at
# the VMA.
v4l2_want() { # kind
	case $1 in
	fsdax | fsdax-private) echo EOPNOTSUPP ;;
	ext4) ((new_gup)) && echo EFAULT || echo streamed ;;
	*) echo streamed ;;
	esac
}

# Runs v4l2cap (which exits 1 unless its result is $1) and checks its lines:
# a stream has every frame verified in the user buffer; a refusal refuses
# every buffer at the pinning call, and STREAMON still returns 0.
v4l2() { # want label v4l2cap-args...
	local want=$1 label=$2 rc=0 result frames
	shift 2
	v4l2cap --expect "$want" "$@" >"$W/v4l2" 2>&1 || rc=$?
	[[ $rc == 0 ]] || fail "$label: v4l2cap $* exited $rc (wanted result $want):
$(tail -n 30 "$W/v4l2")"
	result=$(sed -n 's/^result: \([^ ]*\).*/\1/p' "$W/v4l2")
	case $want in
	streamed)
		frames=$(grep -c '^frame [0-9]*: ok ' "$W/v4l2")
		assert_eq "streamed 4" "$result $frames" "$label: result, frames landed in the buffer"
		;;
	*@qbuf | *@prepare_buf)
		local err=${want%@*} at=${want#*@} n
		n=$(grep -c "^$at [0-2]: $err\$" "$W/v4l2")
		assert_eq "$want 3 ok" "$result $n $(sed -n 's/^streamon: //p' "$W/v4l2")" \
			"$label: result, buffers refused at $at, streamon"
		;;
	*) assert_eq "$want" "$result" "$label: result" ;;
	esac
	ROWS+=("$(printf '%-6s %-40s %s' v4l2 "$label" "$result")")
}

section "V4L2 USERPTR through glibc ioctl(): every memory, single- and multi-planar, QBUF and PREPARE_BUF"
for kind in "${KINDS[@]}"; do
	read -ra mem <<<"$(pinner_mem "$kind")"
	want=$(v4l2_want "$kind")
	for planes in single mplane; do
		p=()
		[[ $planes == mplane ]] && p=(--mplane)
		for at in qbuf prepare_buf; do
			w=$want pre=()
			[[ $at == prepare_buf ]] && pre=(--prepare)
			[[ $want == streamed ]] || w=$want@$at
			v4l2 "$w" "ioctl/$planes/$at $kind" "${p[@]}" "${pre[@]}" "${mem[@]}"
		done
	done
done
assert_contains "$(v4l2cap --mplane --anon --frames 1)" "type=VIDEO_CAPTURE_MPLANE" "vivid instance 1 is multi-planar"

section "V4L2 through libv4l2: v4l2_open() refuses USERPTR itself; v4l2_fd_open(V4L2_DISABLE_CONVERSION) passes it on"
# libv4l2 1.22 answers REQBUFS with memory != MMAP with EINVAL for a capture
# device it converts for, without asking the driver.
for planes in single mplane; do
	p=()
	[[ $planes == mplane ]] && p=(--mplane)
	for kind in anon fsdax; do
		read -ra mem <<<"$(pinner_mem "$kind")"
		v4l2 EINVAL@reqbufs "libv4l2/$planes $kind" --via libv4l2 "${p[@]}" "${mem[@]}"
	done
	strace -f -qq -e trace=ioctl -o "$W/strace" v4l2cap --via libv4l2 "${p[@]}" --anon >/dev/null 2>&1
	assert_not_contains "$(cat "$W/strace")" "VIDIOC_REQBUFS" "libv4l2/$planes: the kernel saw no REQBUFS"
	assert_contains "$(cat "$W/strace")" "VIDIOC_S_FMT" "libv4l2/$planes: the kernel saw S_FMT"
	for kind in anon fsdax devdax; do
		read -ra mem <<<"$(pinner_mem "$kind")"
		want=$(v4l2_want "$kind")
		for at in qbuf prepare_buf; do
			w=$want pre=()
			[[ $at == prepare_buf ]] && pre=(--prepare)
			[[ $want == streamed ]] || w=$want@$at
			v4l2 "$w" "noconv/$planes/$at $kind" --via libv4l2-noconv "${p[@]}" "${pre[@]}" "${mem[@]}"
		done
	done
done
# libv4l-mplane.so (libv4l-0's plugin) shows the multi-planar node as
# single-planar and converts every call with its own syscall(SYS_ioctl).
v4l2cap --via libv4l2-noconv --mplane --anon --frames 1 >"$W/plugin" 2>&1
assert_contains "$(cat "$W/plugin")" "Using mplane plugin for capture" "libv4l2: the mplane plugin is loaded"
assert_eq "driver=vivid type=VIDEO_CAPTURE" "$(sed -n 's/^querycap: ok //p' "$W/plugin")" "libv4l2: the plugin presents the single-planar API"
strace -f -qq -e trace=ioctl -o "$W/strace" v4l2cap --via libv4l2-noconv --mplane --file "$PMEM_MNT/pin.plugin" >/dev/null 2>&1
assert_contains "$(grep VIDIOC_QBUF "$W/strace" | head -n1)" \
	"VIDIOC_QBUF, {type=V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE, index=0}) = -1 EOPNOTSUPP" \
	"libv4l2 plugin: the kernel saw a multi-planar QBUF and refused it"

section "V4L2 bad input (the kernel's answers a preload must leave alone)"
# wrap (userptr + length past the top of the address space): EFAULT on 6.1,
# EOVERFLOW on 6.12 and 6.18 (GUP's own overflow check; not bisected).
wrap=EOVERFLOW
kernel_at_least 6 12 || wrap=EFAULT
want_bad="badfd EBADF|notv4l2 ENOTTY|len0 EINVAL|null EFAULT|unmapped EFAULT|wrap $wrap|index EINVAL|"
for args in "--anon" "--mplane --file $PMEM_MNT/pin.bad" "--via libv4l2-noconv --file $PMEM_MNT/pin.bad"; do
	read -ra a <<<"$args"
	v4l2cap --bad "${a[@]}" >"$W/bad" 2>&1 || fail "v4l2cap --bad $args: $(tail -n 20 "$W/bad")"
	assert_eq "$want_bad" "$(sed -n 's/^bad \([a-z0-9]*\): \(.*\)/\1 \2/p' "$W/bad" | tr '\n' '|')" "v4l2cap --bad $args"
done

# --- io_uring fixed buffers ----------------------------------------------------

# What IORING_REGISTER_BUFFERS answers on this memory: ok or the errno.
# Before 6.5 io_pin_pages() refuses every file-backed VMA that is not shmem
# or hugetlbfs (device-DAX and written private copies included) after GUP.
uring_want() { # kind
	case $1 in
	anon | tmpfs) echo ok ;;
	fsdax | fsdax-private) echo EOPNOTSUPP ;;
	ext4) ((new_gup)) && echo EFAULT || echo EOPNOTSUPP ;;
	*) ((new_gup)) && echo ok || echo EOPNOTSUPP ;;
	esac
}

VIAS=(buffers tags sparse register sys-buffers sys-buffers2 sys-update)
# READ_FIXED source: random bytes, unlike anything in a fresh buffer.
head -c 300000 /dev/urandom >/tmp/pin.src

section "io_uring buffer registration: liburing and syscall(), every memory; READ_FIXED where registered"
for kind in "${KINDS[@]}"; do
	read -ra mem <<<"$(pinner_mem "$kind")"
	want=$(uring_want "$kind")
	uring --read /tmp/pin.src "${mem[@]}" "${VIAS[@]}" >"$W/uring" 2>&1 || fail "uring $kind: $(tail -n 20 "$W/uring")"
	for via in "${VIAS[@]}"; do
		got=$(sed -n "s/^register $via: //p" "$W/uring")
		if [[ $want == ok ]]; then
			got="$got, $(sed -n "s/^read_fixed $via: //p" "$W/uring")"
			assert_eq "ok, ok bytes=300000" "$got" "uring $kind/$via: registered, READ_FIXED gave the file's bytes"
		else
			assert_eq "$want" "$got" "uring $kind/$via"
		fi
		ROWS+=("$(printf '%-6s %-40s %s' uring "$via $kind" "${got%%,*}")")
	done
	# The sparse table itself pins nothing and always registers.
	assert_eq "ok|ok|" "$(sed -n 's/^sparse [a-z-]*: //p' "$W/uring" | tr '\n' '|')" "uring $kind: empty sparse tables"
done

section "io_uring: an fs-DAX iovec after an anonymous one"
# IORING_REGISTER_BUFFERS is all or nothing; an update stops at the first
# bad iovec and returns how many it replaced.
read -ra mem <<<"$(pinner_mem "fsdax")"
uring --mixed "${mem[@]}" buffers sparse sys-update >"$W/uring" 2>&1 || fail "uring --mixed: $(cat "$W/uring")"
assert_eq "EOPNOTSUPP|short=1/2|short=1/2|" "$(sed -n 's/^register [a-z-]*: //p' "$W/uring" | tr '\n' '|')" \
	"uring --mixed: register buffers, sparse update, sys-update"

section "io_uring bad input"
# Not a ring: io_uring_register() itself answers EOPNOTSUPP.
want_bad="badfd EBADF|notring EOPNOTSUPP|len0 EFAULT|null EFAULT|null0 ok|unmapped EFAULT|wrap EOVERFLOW|nr0 EINVAL|badarray EFAULT|"
for args in "--anon" "--file $PMEM_MNT/pin.bad"; do
	read -ra a <<<"$args"
	uring "${a[@]}" --bad >"$W/bad" 2>&1 || fail "uring --bad $args: $(tail -n 20 "$W/bad")"
	for api in sys lib; do
		assert_eq "$want_bad" "$(sed -n "s/^bad \([a-z0-9]*\) $api: \(.*\)/\1 \2/p" "$W/bad" | tr '\n' '|')" "uring --bad $args ($api)"
	done
done

section "the matrix on $KERNEL_VERSION"
printf '%-6s %-40s %s\n' what case kernel
printf '%s\n' "${ROWS[@]}"
assert_kernel_clean
scenario_done
