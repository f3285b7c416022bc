#!/bin/bash
# Issue 15: the Debian package, installed with dpkg -i into the guest (an
# initramfs with no package database: the scenario makes one holding just the
# host's records of the packages daxguard depends on, whose libraries the
# guest has), then used from the installed files only: doctor, the man pages,
# `daxguard run` on a program registering fs-DAX memory on rxe0, `enable
# --host` (an unmodified program refused, and so is ib_write_bw --mmap; ls,
# python3 and a setuid program as before), `enable --unit` (no systemd here:
# the drop-in's content), and removal leaving /etc/ld.so.preload byte for
# byte as it was. The guest has no man-db: the pages are checked for presence
# here and rendered by tests/package.sh.
source "$(dirname "$0")/../guest/lib.sh"
debs=(/opt/daxguard/deb/daxguard_*.deb)
require_file "${debs[0]}" "build it with tools/dist/build-deb"
require_file /opt/daxguard/bin/regmatrix "build with tests/all"
DEB=${debs[0]}
TUPLE=x86_64-linux-gnu
LIB=/usr/lib/$TUPLE/daxguard/libdaxguard.so
W=$(mktemp -d /tmp/install.XXXXXX)

# Installed files only: the overlay's own copies go, and the init's pointer to them.
rm -f /opt/daxguard/bin/daxguard /opt/daxguard/lib/libdaxguard.so
unset DAXGUARD_LIB
hash -r

section "dpkg -i"
mkdir -p /var/lib/dpkg/info /var/lib/dpkg/updates /var/lib/dpkg/triggers
cp /opt/daxguard/deb/status /var/lib/dpkg/status
: >/var/lib/dpkg/available
# And the host's lists of their files (the base layer has those it needs).
cp /opt/daxguard/deb/info/*.list /var/lib/dpkg/info/
# A preload list that was there before, without a final newline: enable
# must add one before its line and disable take both out again.
printf '%s' /usr/lib/$TUPLE/libgcc_s.so.1 >/etc/ld.so.preload
cp /etc/ld.so.preload "$W/preload.before"
before_ls=$(ls / 2>&1)
expect_status 0 dpkg -i "$DEB"
assert_contains "$(dpkg-query -W -f '${Status} ${Multi-Arch}' daxguard)" "install ok installed foreign" "dpkg: installed"
assert_eq /usr/bin/daxguard "$(command -v daxguard)" "daxguard is the packaged one"
require_file "$LIB" "the library in its private directory"
assert_eq "" "$(ls /etc/ld.so.conf.d 2>/dev/null)" "no ld.so.conf.d entry"
cmp -s /etc/ld.so.preload "$W/preload.before" || fail "installing changed /etc/ld.so.preload"
ok "installing leaves /etc/ld.so.preload alone"

section "doctor and the man pages, installed"
out=$(daxguard doctor 2>&1)
assert_contains "$out" "libdaxguard.so: $LIB (in the install's private lib directory)" "doctor finds the installed library"
for page in man1/daxguard.1 man1/daxguard-run.1 man1/daxguard-enable.1 man7/daxguard.7; do
	require_file "/usr/share/man/$page.gz"
done
assert_contains "$(zcat /usr/share/man/man7/daxguard.7.gz)" "DAXGUARD_MODE" "daxguard(7) has the settings"
require_file /usr/share/bash-completion/completions/daxguard
assert_contains "$(bash -c 'source /usr/share/bash-completion/completions/daxguard; complete -p daxguard')" "_daxguard" "completion loads"

section "daxguard run: a program registering fs-DAX memory on $RDMA_DEV"
make_file /mnt/pmem/inst 2
reg=(regmatrix --device "$RDMA_DEV" f=file:/mnt/pmem/inst:2M a=anon:2M)
out=$(daxguard run -- "${reg[@]}" 2>&1)
assert_contains "$out" "daxguard: refused ibv_reg_mr" "run: daxguard's refusal line"
assert_contains "$out" "/mnt/pmem/inst is on filesystem-DAX" "run: names the file"
assert_contains "$out" "f EOPNOTSUPP" "run: the program sees EOPNOTSUPP"
assert_contains "$out" "a ok" "run: anonymous memory registers"
out=$("${reg[@]}" 2>&1)
assert_not_contains "$out" "daxguard:" "without run: no daxguard (the kernel refuses alone)"

section "enable --unit (no systemd in this guest: the drop-in itself)"
out=$(daxguard enable --unit demo --mode warn 2>&1)
assert_contains "$out" "systemctl daemon-reload && systemctl restart demo.service" "enable --unit: next steps"
dropin=/etc/systemd/system/demo.service.d/daxguard.conf
assert_contains "$(cat "$dropin")" "[Service]
Environment=LD_PRELOAD=$LIB
Environment=DAXGUARD_MODE=warn" "the drop-in"

section "enable --host"
# A setuid program, run by an unprivileged user (AT_SECURE).
cp "$(command -v stat)" "$W/suid-stat"
chmod 4755 "$W/suid-stat"
chmod 755 "$W"
suid() { setpriv --reuid 1000 --regid 1000 --clear-groups "$W/suid-stat" -c '%U %a' /etc/ld.so.preload; }
before_suid=$(suid 2>&1)
assert_contains "$before_suid" "root" "setuid stat runs"
out=$(daxguard enable --host 2>&1)
assert_contains "$out" "applies to every process" "enable --host warns"
assert_eq "$(cat "$W/preload.before")
$LIB" "$(cat /etc/ld.so.preload)" "ld.so.preload: the old line, a newline, ours"
out=$("${reg[@]}" 2>&1)
assert_contains "$out" "daxguard: refused ibv_reg_mr" "an unmodified program is refused"
assert_contains "$out" "f EOPNOTSUPP" "with the kernel's errno"
assert_contains "$out" "a ok" "and its anonymous memory registers"
# perftest, unmodified and started as anyone would: no LD_PRELOAD anywhere.
make_file /mnt/pmem/bw 4
bw=(ib_write_bw -d "$RDMA_DEV" -n 5 -s 1048576 -F --mmap=/mnt/pmem/bw)
run_pair 18515 "${bw[@]}" -- "${bw[@]}" 127.0.0.1
out="$(cat "$PAIR_SERVER_OUT" "$PAIR_CLIENT_OUT")"
assert_ne 0 "$PAIR_SERVER_RC" "ib_write_bw --mmap on fs-DAX fails"
assert_contains "$out" "daxguard: refused ibv_reg_mr" "ib_write_bw: daxguard's refusal"
assert_contains "$out" "/mnt/pmem/bw is on filesystem-DAX" "ib_write_bw: the file named"
assert_eq "$before_ls" "$(ls / 2>&1)" "ls as before (nothing on stderr)"
assert_eq "$before_suid" "$(suid 2>&1)" "the setuid program as before"
assert_eq 42 "$(python3 -c 'print(6*7)' 2>&1)" "python3 as before (nothing on stderr)"
out=$(daxguard enable --host 2>&1)
assert_contains "$out" "already" "a second enable --host changes nothing"

section "dpkg -r: the preload line and the drop-in go before the library"
expect_status 0 dpkg -r daxguard
cmp -s /etc/ld.so.preload "$W/preload.before" || fail "/etc/ld.so.preload differs after removal: $(od -c /etc/ld.so.preload | head)"
ok "/etc/ld.so.preload byte for byte as before"
[[ ! -e $dropin && ! -e ${dropin%/*} ]] || fail "the drop-in is still there"
ok "the drop-in is gone"
[[ ! -e $LIB && ! -e /usr/bin/daxguard ]] || fail "files left after dpkg -r"
ok "the library and the command are gone"
assert_eq "$before_ls" "$(ls / 2>&1)" "ls after removal: no 'cannot be preloaded'"
expect_status 0 dpkg --purge daxguard
[[ ! -e /var/lib/daxguard ]] || fail "/var/lib/daxguard left after purge"
ok "purge leaves no state"

section "no ld.so.preload before: enable creates it, removal deletes it"
rm /etc/ld.so.preload
expect_status 0 dpkg -i "$DEB"
daxguard enable --host >/dev/null 2>&1
assert_eq "$LIB" "$(cat /etc/ld.so.preload)" "ld.so.preload holds our line only"
expect_status 0 dpkg --purge daxguard
[[ ! -e /etc/ld.so.preload ]] || fail "/etc/ld.so.preload left behind"
ok "/etc/ld.so.preload gone again"

assert_kernel_clean
scenario_done
