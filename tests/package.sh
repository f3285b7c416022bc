#!/bin/bash
# The Debian package on the host: built with tools/dist/build-deb (cargo-deb),
# lintian-clean (every tag is an error here; the two justified overrides are
# in tools/dist/debian/lintian-overrides), and the installed layout checked
# in an extracted copy: the library in its private directory, the CDI spec, what the man
# pages and completions look like from there, daxguard.pc compiling and
# linking tests/c/capi.c, maintainer scripts that never name
# /etc/ld.so.preload except through `daxguard disable`, and the Slurm SPANK
# plugin and TaskProlog beside the library. The install itself
# (dpkg -i, enable, removal) is tests/scenarios/install.sh, in the guest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
fails=0
check() { # what command...
	local what=$1
	shift
	if "$@"; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}

deb=$(tools/dist/build-deb | tail -1)
[[ -f $deb ]] || { echo "FAIL: no .deb built"; exit 1; }
echo "built $deb"
# --fail-on warning: a new warning fails the step as an error would.
check "lintian: no tags" lintian --fail-on error,warning "$deb"

root=$(mktemp -d /tmp/daxguard-deb.XXXXXX)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
tuple=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
lib=$root/usr/lib/$tuple/daxguard/libdaxguard.so
check "library in /usr/lib/$tuple/daxguard/" test -f "$lib"
check "library exports ibv_reg_mr" bash -c "nm -D --defined-only '$lib' | grep -qw ibv_reg_mr"
etc_files=$(cd "$root" && find etc ! -type d | sort | tr '\n' ' ')
check "in /etc only the configuration file and the CDI spec (no ld.so.conf.d, no ld.so.preload)" \
	test "$etc_files" = "etc/cdi/daxguard.json etc/daxguard/daxguard.conf "
check "the configuration file activates nothing (every line a comment)" \
	bash -c "! grep -qv -e '^#' -e '^\$' '$root/etc/daxguard/daxguard.conf'"
check "CLI, header, unit, docs" test -x "$root/usr/bin/daxguard" -a -f "$root/usr/include/daxguard.h" \
	-a -f "$root/lib/systemd/system/daxguard-watch.service" -a -f "$root/usr/share/doc/daxguard/guide.md"
check "the unit runs the packaged binary" grep -q '^ExecStart=/usr/bin/daxguard watch' "$root/lib/systemd/system/daxguard-watch.service"
for page in "$root"/usr/share/man/man[17]/*.gz; do
	out=$(MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l "$page" 2>&1 >/dev/null)
	check "man ${page##*/} renders without warnings" test -z "$out"
done
check "man daxguard(7) lists DAXGUARD_MODE" bash -c "MANWIDTH=80 man -l '$root/usr/share/man/man7/daxguard.7.gz' | grep -q DAXGUARD_MODE"
check "bash completion loads" bash -c "source '$root/usr/share/bash-completion/completions/daxguard' && complete -p daxguard"
# daxguard.pc, as a C program would use it once installed (the sysroot
# stands in for /): it compiles and links, and the rpath is the private directory.
pcdir=$root/usr/lib/$tuple/pkgconfig
flags=$(PKG_CONFIG_PATH=$pcdir PKG_CONFIG_SYSROOT_DIR=$root pkg-config --cflags --libs daxguard)
check "pkg-config daxguard: -ldaxguard" grep -q -- '-ldaxguard' <<<"$flags"
# shellcheck disable=SC2086 # pkg-config's words
check "capi.c builds against the installed header and library" cc -o "$root/capi" tests/c/capi.c $flags
check "its rpath is the private directory" bash -c "readelf -d '$root/capi' | grep -q 'usr/lib/$tuple/daxguard'"
dpkg-deb -e "$deb" "$root/DEBIAN"
check "the configuration file and the CDI spec are the conffiles" \
	test "$(sort "$root/DEBIAN/conffiles" | tr '\n' ' ')" = "/etc/cdi/daxguard.json /etc/daxguard/daxguard.conf "
check "maintainer scripts: ld.so.preload only through daxguard disable" \
	bash -c "! grep -hv '^[[:space:]]*#' '$root'/DEBIAN/{prerm,postrm} | grep -q ld.so.preload"
# The CDI spec (tests/scenarios/container.sh applies it): JSON naming the
# library where the package puts it.
check "the CDI spec mounts and preloads the packaged library" python3 -c '
import json, sys
spec = json.load(open(sys.argv[1]))
lib = "/usr/lib/" + sys.argv[2] + "/daxguard/libdaxguard.so"
assert spec["kind"] == "daxguard.io/preload", spec["kind"]
for d in spec["devices"]:
    e = d["containerEdits"]
    assert "LD_PRELOAD=" + lib in e["env"], d
    assert [(m["hostPath"], m["containerPath"]) for m in e["mounts"]] == [(lib, lib)], d
' "$root/etc/cdi/daxguard.json" "$tuple"
check "prerm runs daxguard disable --all on remove" grep -q '^[[:space:]]*daxguard disable --all$' "$root/DEBIAN/prerm"
# The drop-in enable --unit writes, as systemd itself parses it (the guest
# has no systemd, and systemctl cat needs a running manager): a unit in a
# root of its own, the drop-in written there by the packaged binary, and
# systemd-analyze verify, which names any line of it it cannot use.
unitroot=$root/unitroot
mkdir -p "$unitroot/etc/systemd/system" "$unitroot/usr/bin"
cp /bin/true "$unitroot/usr/bin/true"
printf '[Unit]\nDefaultDependencies=no\n[Service]\nExecStart=/usr/bin/true\n' >"$unitroot/etc/systemd/system/demo.service"
mkdir -p "$unitroot/usr/lib/$tuple/daxguard" && cp "$lib" "$unitroot/usr/lib/$tuple/daxguard/"
check "enable --unit under a root" "$root/usr/bin/daxguard" enable --root "$unitroot" \
	--lib "/usr/lib/$tuple/daxguard/libdaxguard.so" --unit demo --mode warn
verify=$(systemd-analyze --root="$unitroot" verify demo.service 2>&1)
no_complaint() { ! grep -q daxguard.conf <<<"$verify"; }
check "systemd parses the drop-in without a complaint" no_complaint
check "the drop-in sets LD_PRELOAD to the installed library" grep -q "^Environment=LD_PRELOAD=/usr/lib/$tuple/daxguard/libdaxguard.so$" \
	"$unitroot/etc/systemd/system/demo.service.d/daxguard.conf"
# The Slurm SPANK plugin and its TaskProlog alternative (tools/dist/spank),
# beside the library; tests/scenarios/slurm.sh runs them in the guest.
spank=$root/usr/lib/$tuple/daxguard/daxguard_spank.so
check "the SPANK plugin beside the library, with its entry points" \
	bash -c "nm -D --defined-only '$spank' | grep -qw slurm_spank_task_init && nm -D --defined-only '$spank' | grep -qw plugin_name"
check "the SPANK plugin preloads the packaged library by default" \
	grep -qF "/usr/lib/$tuple/daxguard/libdaxguard.so" "$spank"
check "the TaskProlog beside it, executable" test -x "$root/usr/lib/$tuple/daxguard/daxguard-taskprolog"
((fails == 0)) || { echo "package: $fails failed"; exit 1; }
echo "package: all checks passed"
