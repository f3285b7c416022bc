#!/bin/bash
# Issue 15: daxguard in a container, as the package offers it: the CDI spec
# /etc/cdi/daxguard.json (Container Device Interface; what podman, containerd,
# CRI-O and Docker read for `--device daxguard.io/preload=enabled`). There is
# no container runtime in the guest, so this scenario is the runtime: a
# container root built from the guest's own files (regmatrix, its libraries,
# libibverbs' rxe provider, libgcc_s as any Debian-based image has it), run
# with `unshare --mount --pid --fork` and chroot, a fresh tmpfs copy of the
# root each time, its own /proc, /sys read-only, the guest's /dev (the RDMA
# device, as `--device /dev/infiniband/uverbs0` passes it), and the fs-DAX
# mount as a volume at /data. The CDI edits of the device asked for are
# applied exactly as the installed spec writes them, read from it with jq:
# every mount with its options, every env entry as the environment (beside
# PATH). The spec holds env and mounts only; anything else it grew would go
# unapplied here, so the scenario fails then.
#   with the edits: regmatrix's fs-DAX registration refused with daxguard's
#   message naming the file as the container sees it, anonymous memory
#   registered, each device's mode as named; the library mounted read-only;
#   without them: no daxguard, the kernel decides; the variable without the
#   mount: the loader cannot find the library, and says so.
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"
debs=(/opt/daxguard/deb/daxguard_*.deb)
require_file "${debs[0]}" "build it with tools/dist/build-deb"
require_file /opt/daxguard/bin/regmatrix "build with tests/all"
SPEC=/etc/cdi/daxguard.json
CTR=/tmp/ctr

section "the package, installed (dpkg -i, as install.sh does)"
mkdir -p /var/lib/dpkg/info /var/lib/dpkg/updates /var/lib/dpkg/triggers
cp /opt/daxguard/deb/status /var/lib/dpkg/status
: >/var/lib/dpkg/available
cp /opt/daxguard/deb/info/*.list /var/lib/dpkg/info/
expect_status 0 dpkg -i "${debs[0]}"
require_file "$SPEC" "the package's CDI spec"
assert_contains "$(dpkg-query -W -f '${Conffiles}' daxguard)" "$SPEC" "the spec is a conffile"
assert_eq "daxguard.io/preload" "$(jq -r .kind "$SPEC")" "kind"
assert_eq "enabled enforce warn audit odp" "$(jq -r '[.devices[].name] | join(" ")' "$SPEC")" "devices"
assert_eq "env mounts" "$(jq -r '[.containerEdits // {}, .devices[].containerEdits] | map(keys[]) | unique | join(" ")' "$SPEC")" \
	"the spec's edits are env and mounts only (what this scenario applies)"
jq -M -c '.devices[] | select(.name == "enabled")' "$SPEC"

section "a container root from the guest's own files"
# Copies FILE and every library the loader lists for it (an ELF file) into the root.
copy_in() { # file
	local f=$1 line
	mkdir -p "$CTR${f%/*}" && cp -L "$f" "$CTR$f" || fail "copying $f"
	[[ $f == *.so* || -x $f ]] || return 0
	# (Here-strings, not < <(...): the guest's devtmpfs has no /dev/fd.)
	while read -r line; do
		line=${line#*=> }
		line=${line%% (*}
		[[ $line == /* && ! -e $CTR$line ]] || continue
		mkdir -p "$CTR${line%/*}" && cp -L "$line" "$CTR$line" || fail "copying $line"
	done <<<"$(/lib64/ld-linux-x86-64.so.2 --list "$f" 2>/dev/null)"
}
mkdir -p "$CTR"/usr/{bin,lib,lib64} "$CTR"/{proc,sys,dev,data,tmp,etc}
for d in bin lib lib64; do ln -s "usr/$d" "$CTR/$d"; done
copy_in /opt/daxguard/bin/regmatrix
mv "$CTR/opt/daxguard/bin/regmatrix" "$CTR/usr/bin/regmatrix" && rm -r "$CTR/opt"
copy_in /etc/libibverbs.d/rxe.driver
for f in /usr/lib/x86_64-linux-gnu/libibverbs/librxe-rdmav*.so /usr/lib/x86_64-linux-gnu/libgcc_s.so.1; do
	copy_in "$f"
done
# A static busybox, to look around inside (LD_PRELOAD means nothing to it).
cp /usr/libexec/busybox/busybox "$CTR/usr/bin/busybox"
ldconfig -r "$CTR" || fail "ldconfig for the container root"
[[ ! -e $CTR/usr/lib/x86_64-linux-gnu/daxguard ]] || fail "the container root has daxguard"
ok "container root: $(find "$CTR" -type f | wc -l) files, $(du -sm "$CTR" | cut -f1) MB, no daxguard in it"

# Runs CMD in a container from CTR, with the CDI edits of DEVICE (none: no
# edits; env-only: the device's env without its mounts).
ctr() { # device|none|env-only:DEVICE command...
	local dev=$1 n out
	shift
	local -a env=(PATH=/usr/bin) mounts=() edits=()
	if [[ $dev != none ]]; then
		local name=${dev#env-only:}
		# The spec-wide edits, then the device's (CDI applies both).
		out=$(jq -r --arg d "$name" \
			'(.containerEdits.env // []), (.devices[] | select(.name == $d) | .containerEdits.env // []) | .[]' "$SPEC")
		[[ -n $out ]] || fail "the spec has no env for device $name"
		mapfile -t edits <<<"$out"
		env+=("${edits[@]}")
		out=$(jq -r --arg d "$name" \
			'(.containerEdits.mounts // []), (.devices[] | select(.name == $d) | .containerEdits.mounts // [])
			| .[] | [.hostPath, .containerPath, ((.options // []) | join(","))] | @tsv' "$SPEC")
		[[ $dev == env-only:* || -z $out ]] || mapfile -t mounts <<<"$out"
	fi
	n=${#mounts[@]}
	unshare --mount --pid --fork --propagation private -- bash -c '
		src=$1 pmem=$2 n=$3
		shift 3
		root=/run/container
		mkdir -p "$root" && mount -t tmpfs -o mode=755 ctr "$root" && cp -a "$src/." "$root/" || exit 125
		mount -t proc proc "$root/proc" && mount -t sysfs -o ro sysfs "$root/sys" &&
			mount --rbind /dev "$root/dev" && mount --bind "$pmem" "$root/data" || exit 125
		for ((i = 0; i < n; i++)); do
			IFS=$(printf "\t") read -r host target opts <<<"$1"
			shift
			# The runtime makes the mount point: a directory or an empty file.
			if [[ -d $host ]]; then mkdir -p "$root$target"; else mkdir -p "$root${target%/*}" && : >"$root$target"; fi
			mount ${opts:+-o "$opts"} "$host" "$root$target" || exit 125
		done
		n=$1
		shift
		env=("${@:1:n}")
		shift "$n"
		exec env -i "${env[@]}" chroot "$root" "$@"' container "$CTR" "$PMEM_MNT" "$n" "${mounts[@]}" "${#env[@]}" "${env[@]}" "$@"
}

make_file "$PMEM_MNT/ctr" 2
reg=(regmatrix --device "$RDMA_DEV" f=file:/data/ctr:2M a=anon:2M)

section "--device daxguard.io/preload=enabled"
out=$(ctr enabled "${reg[@]}" 2>&1)
assert_contains "$out" "daxguard: refused ibv_reg_mr" "daxguard's refusal line"
assert_contains "$out" "/data/ctr is on filesystem-DAX (ext4 on /dev/pmem0 at /data, dax=always)" \
	"it names the file and the mount as the container sees them"
assert_contains "$out" "f EOPNOTSUPP" "the program sees EOPNOTSUPP"
assert_contains "$out" "a ok" "anonymous memory registers"
lib=$(jq -r '.devices[] | select(.name == "enabled") | .containerEdits.mounts[0].containerPath' "$SPEC")
out=$(ctr enabled /usr/bin/busybox cat /proc/self/mountinfo 2>&1)
line=$(grep " $lib " <<<"$out")
assert_contains "$line" " ro,nosuid,nodev" "the library is mounted read-only, nosuid, nodev"
out=$(ctr enabled /usr/bin/busybox sh -c 'echo $$; echo "$LD_PRELOAD"' 2>&1)
assert_eq "1
$lib" "$out" "pid 1 of its own pid namespace, LD_PRELOAD set"

section "each device's mode"
# What each mode does with the fs-DAX registration (docs/guide.md, Settings).
for dev in enforce warn audit odp; do
	out=$(ctr "$dev" "${reg[@]}" 2>&1)
	assert_contains "$out" "a ok" "$dev: anonymous memory registers"
	assert_contains "$out" "f EOPNOTSUPP" "$dev: the fs-DAX registration fails"
	case $dev in
	enforce) assert_contains "$out" "daxguard: refused ibv_reg_mr" "enforce: refused by daxguard" ;;
	warn) assert_contains "$out" "daxguard: warning: would refuse" "warn: forwarded with a warning" ;;
	audit) assert_not_contains "$out" "daxguard:" "audit: nothing on stderr (the audit record only)" ;;
	# rxe has no ODP before 6.18: odp refuses as enforce does.
	odp) assert_contains "$out" "daxguard: refused ibv_reg_mr" "odp without ODP on $RDMA_DEV: refused as enforce" ;;
	esac
done

section "without the edits: the kernel decides"
out=$(ctr none "${reg[@]}" 2>&1)
assert_not_contains "$out" "daxguard" "nothing from daxguard"
assert_contains "$out" "f EOPNOTSUPP" "the kernel refuses fs-DAX"
assert_contains "$out" "a ok" "anonymous memory registers"

section "the variable without the mount"
out=$(ctr env-only:enabled "${reg[@]}" 2>&1)
assert_contains "$out" "cannot be preloaded" "the loader says the library is not there"
assert_not_contains "$out" "daxguard: refused" "no daxguard"
assert_contains "$out" "f EOPNOTSUPP" "the kernel refuses fs-DAX"

section "removal"
expect_status 0 dpkg --purge daxguard
[[ ! -e $SPEC && ! -e /etc/cdi ]] || fail "$SPEC left after purge"
ok "purge takes the spec (a conffile) away"

assert_kernel_clean
scenario_done
