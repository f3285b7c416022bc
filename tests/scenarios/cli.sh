#!/bin/bash
# Scenario 3: the CLI on real fs-DAX, device-DAX, tmpfs, non-DAX ext4 and rxe0.
source "$(dirname "$0")/../guest/lib.sh"
require_file /opt/daxguard/bin/daxguard "build with tests/all"

section "daxguard check"
make_file /mnt/pmem/c 2
make_file /tmp/c 2
make_file /mnt/ext4/c 2
out=$(daxguard check /mnt/pmem/c)
rc=$?
assert_eq 1 "$rc" "check fs-DAX file: exit status"
assert_contains "$out" "fs-DAX: yes (statx STATX_ATTR_DAX)" "check fs-DAX file: evidence"
assert_contains "$out" "filesystem: ext4 on /dev/pmem0 mounted at /mnt/pmem" "check fs-DAX file: mount"
assert_contains "$out" "dax=always" "check fs-DAX file: mount options"
assert_contains "$out" "block device DAX-capable: yes" "check fs-DAX file: block device"
out=$(daxguard check /dev/dax1.0)
assert_eq 0 "$?" "check device-DAX: exit status"
assert_contains "$out" "device-DAX: yes" "check device-DAX: evidence"
expect_status 0 daxguard check /tmp/c
expect_status 0 daxguard check /mnt/ext4/c
out=$(daxguard check /mnt/ext4/c)
assert_contains "$out" "block device DAX-capable: no" "check non-DAX ext4: block device"
json=$(daxguard --json check /mnt/pmem/c)
assert_contains "$json" '"verdict": "fsdax"' "check --json verdict"
assert_contains "$json" '"registrable": false' "check --json registrable"

section "daxguard scan --pid of a program that mapped a DAX file"
make_file /mnt/pmem/scan 2
sleep 60 | regmatrix --device "$RDMA_DEV" --hold d=file:/mnt/pmem/scan:2M a=anon:2M >/tmp/hold.out 2>&1 &
for _ in $(seq 100); do grep -q READY /tmp/hold.out && break; sleep 0.1; done
pid=$(sed -n 's/^READY pid=\([0-9]*\).*/\1/p' /tmp/hold.out)
[[ -n $pid ]] || fail "regmatrix --hold did not start: $(cat /tmp/hold.out)"
out=$(daxguard scan --pid "$pid" --only-dax)
rc=$?
assert_eq 1 "$rc" "scan --pid: exit status (fs-DAX present)"
assert_contains "$out" "/mnt/pmem/scan" "scan --pid lists the DAX VMA"
assert_contains "$out" "fsdax" "scan --pid names its kind"
json=$(daxguard --json scan --pid "$pid")
assert_contains "$json" '"/mnt/pmem/scan"' "scan --pid --json"
kill "$pid" 2>/dev/null
wait 2>/dev/null

section "daxguard probe on $RDMA_DEV: the kernel's answer next to daxguard's"
out=$(daxguard probe --device "$RDMA_DEV" /mnt/pmem/c)
rc=$?
echo "$out"
assert_eq 0 "$rc" "probe fs-DAX: exit status (agree)"
assert_contains "$out" "AGREE" "probe fs-DAX agrees"
out=$(daxguard probe --device "$RDMA_DEV" --anon --len 2M)
assert_eq 0 "$?" "probe anonymous: exit status"
assert_contains "$out" "AGREE" "probe anonymous agrees"
out=$(daxguard probe --device "$RDMA_DEV" /dev/dax1.0)
assert_eq 0 "$?" "probe device-DAX: exit status"
assert_contains "$out" "AGREE" "probe device-DAX agrees"
expect_status 2 daxguard probe --device nosuchdev --anon

section "daxguard doctor"
out=$(daxguard doctor)
echo "$out"
assert_contains "$out" "$RDMA_DEV" "doctor lists the RDMA device"
assert_contains "$out" "/dev/dax1.0" "doctor lists device-DAX"
assert_contains "$out" "/mnt/pmem" "doctor lists the DAX mount"
assert_kernel_clean
scenario_done
