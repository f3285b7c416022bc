#!/bin/bash
# daxguard watch (issue 14) sees VFIO: a userspace driver's DMA mapping
# (VFIO_IOMMU_MAP_DMA, type1) pins its buffer long-term through
# pin_user_pages_remote(), so the kernel refuses one over a file on fs-DAX
# with EOPNOTSUPP and maps anonymous memory. watch reports exactly the
# refusal, as VFIO, from the process that asked, naming the file. On 6.1
# pin_user_pages_remote() takes 7 arguments and gets watch's kprobe and
# kretprobe pair, elsewhere fexit.
# The device is qemu's `edu` behind an emulated Intel IOMMU, bound to vfio-pci.
# guest-machine: iommu
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
for f in daxguard vfiomap; do require_file "$BIN/$f" "cargo build --release; make -C tests/c"; done
W=$(mktemp -d /tmp/vfio.XXXXXX)

section "VFIO on Linux $KERNEL_VERSION: the edu device bound to vfio-pci"
# No interrupt remapping (intremap=off): type1 must be told to accept that.
modprobe vfio_iommu_type1 allow_unsafe_interrupts=1 || fail "modprobe vfio_iommu_type1"
echo Y >/sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts
modprobe vfio-pci || fail "modprobe vfio-pci"
bdf=
for d in /sys/bus/pci/devices/*; do
	[[ $(cat "$d/vendor"):$(cat "$d/device") == 0x1234:0x11e8 ]] && bdf=${d##*/}
done
[[ -n $bdf ]] || fail "no edu device (1234:11e8): is this the iommu machine?"
[[ -e /sys/bus/pci/devices/$bdf/iommu_group ]] || fail "$bdf has no IOMMU group (intel_iommu=on?)"
echo vfio-pci >"/sys/bus/pci/devices/$bdf/driver_override"
echo "$bdf" >/sys/bus/pci/drivers_probe
group=$(basename "$(readlink "/sys/bus/pci/devices/$bdf/iommu_group")")
assert_eq vfio-pci "$(basename "$(readlink "/sys/bus/pci/devices/$bdf/driver")")" "$bdf's driver"
[[ -c /dev/vfio/$group ]] || fail "/dev/vfio/$group missing"
ok "/dev/vfio/$group for $bdf"

section "watch: one refusal for the fs-DAX mapping, none for the anonymous one"
start_watch main --json
grep 'watching long-term pins' "$W/main.err"
bash -c 'echo $$ >"$0"; exec "$@"' "$W/dax.pid" vfiomap "$bdf" --file /mnt/pmem/vfio.dax >"$W/dax" 2>&1 ||
	fail "vfiomap on fs-DAX: $(cat "$W/dax")"
cat "$W/dax"
assert_eq "map: EOPNOTSUPP" "$(grep '^map: ' "$W/dax")" "VFIO_IOMMU_MAP_DMA over an fs-DAX file"
bash -c 'echo $$ >"$0"; exec "$@"' "$W/anon.pid" vfiomap "$bdf" --anon >"$W/anon" 2>&1 ||
	fail "vfiomap on anonymous memory: $(cat "$W/anon")"
cat "$W/anon"
assert_eq "map: ok|unmap: ok" "$(grep -E '^(un)?map: ' "$W/anon" | tr '\n' '|' | sed 's/|$//')" \
	"VFIO_IOMMU_MAP_DMA over anonymous memory"
stop_watch "$WATCH_PID" main

refusals=$(grep '"type":"refusal"' "$W/main.out")
printf '%s\n' "$refusals" | cut -c1-600
assert_eq 1 "$(printf '%s\n' "$refusals" | grep -c .)" "refusals reported in all"
dax_pid=$(cat "$W/dax.pid") anon_pid=$(cat "$W/anon.pid")
for want in "\"pid\":$dax_pid," '"comm":"vfiomap"' '"consumer":"vfio"' '"error":"EOPNOTSUPP"' '"reason":"fsdax"' \
	'"path":"/mnt/pmem/vfio.dax"' '"hook":"pin_user_pages_remote"'; do
	assert_contains "$refusals" "$want" "the refusal"
done
assert_not_contains "$refusals" "\"pid\":$anon_pid," "no refusal for the anonymous mapping"
assert_contains "$(grep '"type":"summary"' "$W/main.out")" '"refusals":1,"dropped":0' "summary"

assert_kernel_clean
scenario_done
