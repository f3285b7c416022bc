#!/bin/bash
# Issue 15: the .deb installed the way an operator installs it, with
# `apt-get install ./daxguard_*.deb`, into a clean Debian 12 root: a
# debootstrapped bookworm minbase (cached) from the mirror this host's apt
# uses, with man-db and bash-completion added so that `man` and the
# completion loader can be tried. apt resolves the dependencies (and the
# Recommends, libibverbs1 and its ibverbs-providers) from the mirror. Then,
# from the installed files only, inside the root: `daxguard doctor`, every man
# page through `MANWIDTH=80 man --warnings -l`, `man daxguard`, the bash
# completion loaded the way bash-completion loads it, and a program run under
# `daxguard run`.
#
# The installed root is then packed into an ext4 image for the guest
# (tests/scenarios/cleanroot.sh: a guarded program refused on fs-DAX over
# rxe0, enable --host, purge, in the guest's chroot). This host has no RDMA
# device and no fs-DAX, so here the removal is proved without them:
# `enable --host`, `apt-get purge --autoremove daxguard`, and the root's file
# list (type, mode, owner, bytes) compared with the one taken before the
# install. What may differ, and why, is in CHANGED_BY_APT below.
#
# usage: tests/cleanroot.sh      (root; needs network to the mirror)
# The .deb is target/debian/daxguard_*.deb (tools/dist/build-deb, which
# tests/package.sh runs); KEEP_WORK=1 keeps the work directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=tests/guest/common.sh
source tests/guest/common.sh

fails=0
check() { # what command...
	local what=$1
	shift
	if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}
fatal() {
	echo "cleanroot: error: $*" >&2
	exit 1
}

[[ $(id -u) == 0 ]] || fatal "run as root (debootstrap, chroot)"
debs=(target/debian/daxguard_*.deb)
[[ -f ${debs[-1]} ]] || fatal "no target/debian/daxguard_*.deb: run tools/dist/build-deb"
DEB=$(realpath "${debs[-1]}")
for tool in debootstrap zstd mkfs.ext4 unshare; do
	command -v "$tool" >/dev/null || fatal "$tool missing (tests/steps.sh BUILD_PACKAGES)"
done

# The mirror this host's apt uses, and the bookworm suites it has there:
# the root gets the same, so apt resolves the same versions as on the host.
# shellcheck disable=SC2016 # apt's format, not a shell expansion
mapfile -t SOURCES < <(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 'Identifier: Packages' |
	awk '$2 ~ /^bookworm(-updates|-security)?$/' | sort -u)
MIRROR=
for s in "${SOURCES[@]}"; do
	[[ ${s#* } == bookworm ]] && MIRROR=${s%% *}
done
if [[ -z $MIRROR ]]; then
	MIRROR=http://deb.debian.org/debian/
	SOURCES=("$MIRROR bookworm")
	echo "cleanroot: the host's apt has no bookworm source; using $MIRROR"
fi
echo "mirror: $MIRROR (suites: $(printf '%s\n' "${SOURCES[@]}" | awk '{ print $2 }' | paste -sd' '))"

# What the clean root has beyond minbase: the tools the checks use.
ROOT_PACKAGES=(man-db bash-completion)
BASE_DIR=$CACHE/cleanroot
mkdir -p "$BASE_DIR"
key=$({
	printf '%s\n' "${SOURCES[@]}" "${ROOT_PACKAGES[@]}" minbase
	debootstrap --version
} | sha256sum | cut -c1-16)
BASE=$BASE_DIR/bookworm-minbase-$key.tar.zst

# Runs a command inside ROOT as a fresh login would see it: /proc, /sys and
# /dev mounted in a private mount namespace, so they go with the command and
# nothing is left mounted under the work directory when it is removed.
ROOT=
inroot() { # command...
	# shellcheck disable=SC2016 # the inner shell's expansions
	unshare --mount --propagation private -- /bin/sh -c '
		r=$1
		shift
		mount -t proc proc "$r/proc" && mount -t sysfs sysfs "$r/sys" && mount --rbind /dev "$r/dev" || exit 125
		exec chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 \
			TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"' sh "$ROOT" "$@"
}

# The clean root, once: debootstrap --variant=minbase, the host's sources,
# the lists, ROOT_PACKAGES, and no downloaded .debs (apt-get clean).
build_base() {
	local stage
	stage=$(mktemp -d "$BASE_DIR/stage.XXXXXX")
	# shellcheck disable=SC2064 # the path now
	trap "rm -rf '$stage'" EXIT
	echo "building the clean root: debootstrap --variant=minbase bookworm from $MIRROR"
	local t=$SECONDS
	debootstrap --variant=minbase bookworm "$stage/root" "$MIRROR" >"$stage/debootstrap.log" 2>&1 || {
		tail -20 "$stage/debootstrap.log"
		fatal "debootstrap failed"
	}
	printf '%s\n' "${SOURCES[@]}" | awk '{ print "deb " $1 " " $2 " main" }' >"$stage/root/etc/apt/sources.list"
	echo "debootstrap: $((SECONDS - t)) s"
	ROOT=$stage/root
	inroot apt-get update -qq || fatal "apt-get update in the clean root failed"
	inroot apt-get install -y -qq --no-install-recommends "${ROOT_PACKAGES[@]}" >"$stage/apt.log" 2>&1 || {
		tail -20 "$stage/apt.log"
		fatal "apt-get install ${ROOT_PACKAGES[*]} in the clean root failed"
	}
	inroot apt-get clean
	echo "${ROOT_PACKAGES[*]}: $((SECONDS - t)) s"
	tar -C "$stage/root" --numeric-owner --xattrs -cf - . | zstd -q -1 -T0 -o "$BASE.tmp"
	mv "$BASE.tmp" "$BASE"
	rm -rf "$stage"
	trap - EXIT
	# Other keys' roots unused for a day are stale (the cache may be shared).
	find "$BASE_DIR" -maxdepth 1 -name 'bookworm-minbase-*' ! -name "${BASE##*/}" -mtime +0 -delete
}

start=$SECONDS
(
	flock 9
	if [[ -s $BASE ]]; then
		touch "$BASE"
	else
		build_base
	fi
) 9>"$BASE_DIR/lock"
echo "clean root: ${BASE##*/}, $(du -m "$BASE" | cut -f1) MB ($((SECONDS - start)) s)"

W=$(mktemp -d "$BASE_DIR/run.XXXXXX")
if [[ ${KEEP_WORK:-0} == 1 ]]; then
	echo "work directory: $W"
else
	trap 'rm -rf "$W"' EXIT
fi
ROOT=$W/root
META=$W/meta
mkdir -p "$ROOT" "$META"
zstd -q -dc "$BASE" | tar -C "$ROOT" --numeric-owner --xattrs -xpf -

# The root's every file: type, mode, owner, and a digest of a regular file's
# bytes or a symlink's target. Run inside the root, with its own find (the
# guest runs the same script, from the image's meta/, on the same root);
# -xdev keeps /proc, /sys, /dev and any other mount out.
cat >"$META/rootlist" <<'EOF'
cd / || exit 1
find . -xdev -type f -print0 | xargs -0r sha256sum >/tmp/.rootlist.sums || exit 1
find . -xdev ! -path ./tmp/.rootlist.sums -printf '%p\t%y %m %U:%G %l\n' |
	awk -F '\t' 'NR == FNR { sums[substr($0, 67)] = substr($0, 1, 64); next }
		{ print $1 "\t" $2 (($1 in sums) ? " " sums[$1] : "") }' /tmp/.rootlist.sums - | LC_ALL=C sort
rm -f /tmp/.rootlist.sums
EOF
rootlist() { inroot /bin/bash -s <"$META/rootlist"; }
# Two such lists compared (POSIX awk: the guest runs it with busybox's):
# "allowed SIDE PATH" where the path matches $RE, "other SIDE LINE"
# otherwise; SIDE is < (only before) or > (only after).
cat >"$META/compare" <<'EOF'
NR == FNR { before[$0] = 1; next }
{ if ($0 in before) delete before[$0]; else after[$0] = 1 }
function report(side, l,    p) {
	p = l
	sub(/\t.*/, "", p)
	if (p ~ ENVIRON["RE"]) print "allowed " side " " p
	else print "other " side " " l
}
END {
	for (l in before) report("<", l)
	for (l in after) report(">", l)
}
EOF

# What apt and dpkg keep about their own work, and what the dependencies
# leave by design: not daxguard's, and allowed to differ between the list
# before the install and after `purge --autoremove`. Each was seen to differ:
#   dpkg's backup of its status file (the status file itself is as before);
#   apt's cache (the .debs it fetched, pkgcache.bin) and apt's and dpkg's logs;
#   ldconfig's aux-cache (/etc/ld.so.cache itself is as before);
#   man-db's cache: its index, the cat pages `man daxguard` formatted;
#   the rdma group libibverbs1's postinst adds (/etc/group, /etc/gshadow and
#   their backups) and adduser's lock in /run: Debian removes no system group.
CHANGED_BY_APT='^\./(var/lib/dpkg/status-old$|var/cache/apt/|var/log/(apt/|dpkg\.log$)|var/cache/ldconfig/aux-cache$|var/cache/man/|etc/(group|gshadow)-?$|run/adduser$)'

section() { printf '\n=== %s ===\n' "$*"; }

section "apt-get install ./${DEB##*/}"
inroot apt-get update -qq || fatal "apt-get update in the clean root failed"
rootlist >"$META/before.list"
echo "before: $(wc -l <"$META/before.list") files"
cp "$DEB" "$ROOT/tmp/"
t=$SECONDS
if ! inroot apt-get install -y "./tmp/${DEB##*/}" >"$W/install.log" 2>&1; then
	cat "$W/install.log"
	fatal "apt-get install ./${DEB##*/} failed"
fi
rm "$ROOT/tmp/${DEB##*/}"
grep -E '^(Get|Setting up)' "$W/install.log"
echo "installed in $((SECONDS - t)) s"
# shellcheck disable=SC2016 # dpkg-query's format
status=$(inroot dpkg-query -W -f '${Package} ${Status}\n' daxguard libibverbs1 ibverbs-providers 2>&1)
check "daxguard installed" grep -qx 'daxguard install ok installed' <<<"$status"
check "libibverbs1 and ibverbs-providers came along (Recommends)" \
	test "$(grep -c ' install ok installed$' <<<"$status")" = 3
inroot dpkg-query -L daxguard >"$META/daxguard.files"

section "from the installed files: doctor, man, completion, run"
out=$(inroot daxguard doctor 2>&1) || true
echo "$out"
check "doctor finds the installed library" grep -qF \
	"libdaxguard.so: /usr/lib/x86_64-linux-gnu/daxguard/libdaxguard.so (in the install's private lib directory)" <<<"$out"
check "doctor finds the root's libibverbs" grep -q '^OK    libibverbs: ' <<<"$out"
pages=$(grep -E '^/usr/share/man/man[17]/daxguard[^/]*\.gz$' "$META/daxguard.files")
check "the package has daxguard(1), daxguard(7) and a page per subcommand" test "$(wc -l <<<"$pages")" -ge 8
for page in $pages; do
	warn=$(inroot env MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
	check "MANWIDTH=80 man --warnings -l $page: no warnings" test -z "$warn"
done
out=$(inroot env MANWIDTH=80 MANPAGER=cat man daxguard 2>&1)
check "man daxguard renders daxguard(1)" grep -q '^ *daxguard - ' <<<"$out"
out=$(inroot env MANWIDTH=80 MANPAGER=cat man 7 daxguard 2>&1)
check "man 7 daxguard lists DAXGUARD_MODE" grep -q 'DAXGUARD_MODE' <<<"$out"
# As an interactive bash finds it: bash-completion's loader, by command name.
out=$(inroot bash -c 'source /usr/share/bash-completion/bash_completion; _completion_loader daxguard; complete -p daxguard' 2>&1)
echo "$out"
check "bash completion loads (complete -p daxguard)" grep -q -- '-F _daxguard daxguard$' <<<"$out"
# No RDMA device here: the program run is cat, showing the installed
# library mapped into it (the guest runs one that registers fs-DAX memory).
out=$(inroot daxguard run -- cat /proc/self/maps 2>&1) || true
check "daxguard run preloads the installed library" \
	grep -q ' /usr/lib/x86_64-linux-gnu/daxguard/libdaxguard.so$' <<<"$out"

section "an image of the installed root, for tests/scenarios/cleanroot.sh"
# meta/: the list before the install, the package's file list, the .deb's
# digest (the scenario checks it against the .deb the guest has: a stale
# image fails, it does not pass), the list script and the exclusions.
sha256sum <"$DEB" | cut -d' ' -f1 >"$META/deb.sha256"
printf '%s\n' "$CHANGED_BY_APT" >"$META/changed-by-apt"
t=$SECONDS
size=$(($(du -sm "$W" | cut -f1) * 5 / 4 + 64))
mkfs.ext4 -q -F -L daxguard-root -E root_owner=0:0 -d "$W" "$CLEANROOT_IMAGE.tmp" "${size}M" ||
	fatal "mkfs.ext4 -d of the installed root failed"
mv "$CLEANROOT_IMAGE.tmp" "$CLEANROOT_IMAGE"
echo "$CLEANROOT_IMAGE: ${size} MiB ext4, $(du -m "$CLEANROOT_IMAGE" | cut -f1) MB used ($((SECONDS - t)) s)"

section "enable --host, then apt-get purge --autoremove daxguard"
check "the root has no /etc/ld.so.preload" test ! -e "$ROOT/etc/ld.so.preload"
inroot daxguard enable --host
check "enable --host wrote /etc/ld.so.preload" grep -qx /usr/lib/x86_64-linux-gnu/daxguard/libdaxguard.so "$ROOT/etc/ld.so.preload"
out=$(inroot ls / 2>&1)
check "ls in the root prints nothing on stderr with the preload" test -z "$(inroot ls / 2>&1 >/dev/null)"
t=$SECONDS
if ! inroot apt-get purge -y --autoremove daxguard >"$W/purge.log" 2>&1; then
	cat "$W/purge.log"
	fatal "apt-get purge daxguard failed"
fi
grep -E '^(Removing|Purging)' "$W/purge.log"
echo "purged in $((SECONDS - t)) s"
check "/etc/ld.so.preload is gone again (enable created it)" test ! -e "$ROOT/etc/ld.so.preload"
check "nothing loads a missing preload (no 'cannot be preloaded')" test -z "$(inroot ls / 2>&1 >/dev/null)"
# The package's files that are there and were not before (dpkg -L also
# names /usr, /etc...; /lib is usr/lib in this merged-/usr root).
left=$(while read -r f; do
	[[ -e $ROOT$f || -L $ROOT$f ]] || continue
	p=$(realpath -s "$ROOT$f")
	[[ -L $p ]] || p=$(realpath "$p")
	grep -qF "./${p#"$ROOT"/}	" "$META/before.list" || echo "$f"
done <"$META/daxguard.files")
check "no file of the package is left" test -z "$left"
[[ -z $left ]] || echo "$left"

section "the root before the install and after the removal"
rootlist >"$META/after.list"
RE=$CHANGED_BY_APT awk -f "$META/compare" "$META/before.list" "$META/after.list" >"$W/changes"
echo "changed, apt's and the dependencies' own (allowed):"
awk '$1 == "allowed" { print $3 }' "$W/changes" | sort -u | sed -E 's#/[^/]+/CACHEDIR\.TAG$#/*/CACHEDIR.TAG#; s#/archives/[^/]+\.deb$#/archives/*.deb#' |
	sort | uniq -c | awk '{ print "  " $2 ($1 > 1 ? " (" $1 ")" : "") }'
other=$(grep -v '^allowed ' "$W/changes" || true)
check "every other file as it was: type, mode, owner, bytes ($(wc -l <"$META/before.list") listed)" test -z "$other"
[[ -z $other ]] || echo "$other"

echo
echo "cleanroot: $((SECONDS - start)) s"
((fails == 0)) || { echo "cleanroot: $fails failed"; exit 1; }
echo "cleanroot: all checks passed"
