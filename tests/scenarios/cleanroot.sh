#!/bin/bash
# guest-drive: cleanroot
# Issue 15: the clean Debian 12 root tests/cleanroot.sh made on the host
# (debootstrap minbase, then `apt-get install ./daxguard_*.deb` with its
# dependencies from the mirror), used where there is RDMA and fs-DAX: the
# image is /dev/vda here (virtio-blk, snapshot=on: nothing written reaches
# it), and everything below runs chrooted in it, from its installed files
# only: its daxguard, its libdaxguard.so, its libibverbs and rxe provider
# (the Recommends apt installed). The guest's fs-DAX mount is bound onto the
# root's /mnt, /proc, /sys and /dev onto its own.
#   doctor sees rxe0 and the installed library; `daxguard run -- regmatrix`
#   refused on fs-DAX with daxguard's message, anonymous memory registered;
#   without it the kernel refuses alone; `enable --host`, then the unmodified
#   regmatrix refused; `apt-get purge --autoremove daxguard` (offline), and
#   the root as it was before the install: /etc/ld.so.preload absent again
#   (the clean root has none), every file's type, mode, owner and bytes as
#   listed before the install, except what meta/changed-by-apt allows (apt's
#   and dpkg's own state and logs, man-db's cache, the dependencies' rdma group).
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"
debs=(/opt/daxguard/deb/daxguard_*.deb)
require_file "${debs[0]}" "build it with tools/dist/build-deb"
require_file /opt/daxguard/bin/regmatrix "build with tests/all"
IMG=/mnt/img
R=$IMG/root
META=$IMG/meta
LIB=/usr/lib/x86_64-linux-gnu/daxguard/libdaxguard.so

section "the installed root, from /dev/vda"
# virtio_pci is built into 6.12 and 6.18, a module on 6.1.
modprobe -a virtio_pci virtio_blk || fail "modprobe virtio_blk"
for _ in $(seq 100); do [[ -b /dev/vda ]] && break; sleep 0.1; done
require_file /dev/vda "the cleanroot drive (qemu.sh guest_drive)"
mkdir -p "$IMG"
expect_status 0 mount -t ext4 /dev/vda "$IMG"
assert_eq "$(cat "$META/deb.sha256")" "$(sha256sum <"${debs[0]}" | cut -d' ' -f1)" \
	"the image holds this build's .deb (else rerun tests/cleanroot.sh)"
{ mount -t proc proc "$R/proc" && mount -t sysfs sysfs "$R/sys" && mount --rbind /dev "$R/dev"; } ||
	fail "mounting /proc, /sys, /dev in the root"
mount --bind "$PMEM_MNT" "$R/mnt" || fail "binding $PMEM_MNT onto the root's /mnt"
cp /opt/daxguard/bin/regmatrix "$R/tmp/regmatrix"
inroot() { chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
	DEBIAN_FRONTEND=noninteractive "$@"; }
# shellcheck disable=SC2016 # dpkg-query's format
assert_contains "$(inroot dpkg-query -W -f '${Package} ${Version} ${Status}\n' daxguard)" "install ok installed" \
	"dpkg in the root: daxguard installed"

section "doctor, in the root"
out=$(inroot daxguard doctor 2>&1)
assert_contains "$out" "libdaxguard.so: $LIB (in the install's private lib directory)" "doctor finds the installed library"
assert_contains "$out" "libibverbs: /lib/x86_64-linux-gnu/libibverbs.so.1" "doctor finds the root's libibverbs"
assert_contains "$out" "$RDMA_DEV" "doctor sees $RDMA_DEV"

section "a guarded program: regmatrix on fs-DAX and anonymous memory over $RDMA_DEV"
make_file "$PMEM_MNT/cr" 2
file_is_dax "$PMEM_MNT/cr" || fail "$PMEM_MNT/cr is not DAX"
reg=(/tmp/regmatrix --device "$RDMA_DEV" f=file:/mnt/cr:2M a=anon:2M)
out=$(inroot daxguard run -- "${reg[@]}" 2>&1)
assert_contains "$out" "daxguard: refused ibv_reg_mr" "daxguard run: daxguard's refusal line"
assert_contains "$out" "/mnt/cr is on filesystem-DAX (ext4 on /dev/pmem0 at /mnt, dax=always)" \
	"it names the file and the mount as the root sees them"
assert_contains "$out" "f EOPNOTSUPP" "the program sees EOPNOTSUPP"
assert_contains "$out" "a ok" "anonymous memory registers (the root's libibverbs and rxe provider)"
out=$(inroot "${reg[@]}" 2>&1)
assert_not_contains "$out" "daxguard:" "without daxguard: nothing from it"
assert_contains "$out" "f EOPNOTSUPP" "without daxguard: the kernel refuses alone"

section "enable --host, in the root"
[[ ! -e $R/etc/ld.so.preload ]] || fail "the clean root has an /etc/ld.so.preload"
ok "the clean root has no /etc/ld.so.preload"
out=$(inroot daxguard enable --host 2>&1)
assert_contains "$out" "applies to every process" "enable --host warns"
assert_eq "$LIB" "$(cat "$R/etc/ld.so.preload")" "/etc/ld.so.preload names the installed library"
out=$(inroot "${reg[@]}" 2>&1)
assert_contains "$out" "daxguard: refused ibv_reg_mr" "the unmodified program is refused by daxguard"
assert_contains "$out" "a ok" "and its anonymous memory registers"
assert_eq "" "$(inroot ls / 2>&1 >/dev/null)" "ls: nothing on stderr"

section "apt-get purge --autoremove daxguard, offline"
start=$SECONDS
out=$(inroot apt-get purge -y --autoremove daxguard 2>&1) || fail "apt-get purge failed: $(tail -n 20 <<<"$out")"
ok "apt-get purge --autoremove daxguard ($((SECONDS - start)) s)"
grep -E '^(Removing|Purging)' <<<"$out"
[[ ! -e $R/etc/ld.so.preload ]] || fail "/etc/ld.so.preload left: $(od -c "$R/etc/ld.so.preload" | head -n 3)"
ok "/etc/ld.so.preload absent again, as before the install"
assert_eq "" "$(inroot ls / 2>&1 >/dev/null)" "ls: no 'cannot be preloaded'"
out=$(inroot "${reg[@]}" 2>&1)
assert_not_contains "$out" "daxguard:" "regmatrix after removal: nothing from daxguard"
[[ ! -e $R$LIB && ! -e $R/usr/bin/daxguard ]] || fail "the library or the command is left"
ok "the library and the command are gone"

section "the root before the install and after the removal"
rm "$R/tmp/regmatrix"
umount "$R/mnt" || fail "umount the root's /mnt"
inroot /bin/bash -s <"$META/rootlist" >/tmp/after.list || fail "listing the root"
RE=$(cat "$META/changed-by-apt") awk -f "$META/compare" "$META/before.list" /tmp/after.list >/tmp/changes
echo "changed, apt's and the dependencies' own (allowed):"
awk '$1 == "allowed" { print $3 }' /tmp/changes | sort -u | sed -E 's#/[^/]+/CACHEDIR\.TAG$#/*/CACHEDIR.TAG#; s#/archives/[^/]+\.deb$#/archives/*.deb#' |
	sort | uniq -c | awk '{ print "  " $2 ($1 > 1 ? " (" $1 ")" : "") }'
other=$(grep -v '^allowed ' /tmp/changes)
assert_eq "" "$other" "every other file as it was: type, mode, owner, bytes ($(wc -l <"$META/before.list") listed)"

assert_kernel_clean
scenario_done
