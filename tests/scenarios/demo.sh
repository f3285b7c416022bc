#!/bin/bash
# The demo (tests/demo): a real RDMA program, perftest's ib_write_bw, on
# filesystem-DAX memory without and with daxguard, then where it works, then
# daxguard scan of a process that maps a DAX file. Readable, not a log.
source "$(dirname "$0")/../guest/lib.sh"
SHIM=/opt/daxguard/lib/libdaxguard.so
require_file "$SHIM" "build with tests/all"
bw=(ib_write_bw -d "$RDMA_DEV" -n 5 -s 1048576 -F)
show() { sed 's/^/    /' "$@"; }

cat <<TXT

daxguard demo, inside a qemu guest running Linux $KERNEL_VERSION:
  /mnt/pmem   ext4 on /dev/pmem0 (emulated NVDIMM), mounted -o dax  -> filesystem-DAX
  /dev/dax1.0 device-DAX
  $RDMA_DEV        Soft-RoCE (rdma_rxe) on a veth pair
TXT
make_file /mnt/pmem/buf 4

section "1. ib_write_bw --mmap=/mnt/pmem/buf, without daxguard"
echo "\$ ib_write_bw -d $RDMA_DEV --mmap=/mnt/pmem/buf 127.0.0.1   (server started the same way)"
# perftest registers its buffer once the client connected: run a pair.
PAIR_TIMEOUT=60 run_pair 18515 "${bw[@]}" --mmap=/mnt/pmem/buf -- \
	strace -f -qq -Z -e trace=ioctl -o /tmp/demo.strace "${bw[@]}" --mmap=/mnt/pmem/buf 127.0.0.1
grep -E "allocate MR|Couldn|Failed|ERROR" "$PAIR_CLIENT_OUT" | head -n 3 | show
echo "  what the kernel said (strace of the client):"
grep -m1 EOPNOTSUPP /tmp/demo.strace | sed 's/^[0-9]* *//' | show
echo "  -> the program only learns 'Operation not supported', with no file or reason."
assert_contains "$(cat /tmp/demo.strace)" "EOPNOTSUPP" "the kernel refused the fs-DAX registration"

section "2. the same, under daxguard run"
echo "\$ daxguard run -- ib_write_bw -d $RDMA_DEV --mmap=/mnt/pmem/buf 127.0.0.1"
PAIR_TIMEOUT=60 run_pair 18515 env LD_PRELOAD="$SHIM" "${bw[@]}" --mmap=/mnt/pmem/buf -- \
	daxguard run --lib "$SHIM" -- "${bw[@]}" --mmap=/mnt/pmem/buf 127.0.0.1
grep -E "daxguard|allocate MR" "$PAIR_CLIENT_OUT" | fold -s -w 100 | show
assert_contains "$(cat "$PAIR_CLIENT_OUT")" "daxguard: refused ibv_reg_mr" "daxguard refused it up front"
assert_contains "$(cat "$PAIR_CLIENT_OUT")" "/mnt/pmem/buf is on filesystem-DAX (ext4 on /dev/pmem0 at /mnt/pmem, dax=always)" "and named the file and mount"

section "3. ib_write_bw on anonymous memory, under daxguard: traffic flows"
run_pair 18515 env LD_PRELOAD="$SHIM" "${bw[@]}" -- env LD_PRELOAD="$SHIM" "${bw[@]}" 127.0.0.1
echo "\$ LD_PRELOAD=libdaxguard.so ib_write_bw -d $RDMA_DEV 127.0.0.1   (server started the same way)"
grep -E "#bytes|^ *1048576" "$PAIR_CLIENT_OUT" | show
assert_eq "0 0" "$PAIR_SERVER_RC $PAIR_CLIENT_RC" "ib_write_bw completed on anonymous memory"

section "4. daxguard scan of a process that mapped a DAX file"
make_file /mnt/pmem/db 2
sleep 60 | regmatrix --device "$RDMA_DEV" --hold data=file:/mnt/pmem/db:2M >/tmp/demo.hold 2>&1 &
for _ in $(seq 100); do grep -q READY /tmp/demo.hold && break; sleep 0.1; done
pid=$(sed -n 's/^READY pid=\([0-9]*\).*/\1/p' /tmp/demo.hold)
echo "\$ daxguard scan --pid $pid --only-dax"
daxguard scan --pid "$pid" --only-dax | show
assert_contains "$(daxguard scan --pid "$pid" --only-dax)" "/mnt/pmem/db" "scan found the DAX mapping"
kill "$pid" 2>/dev/null
scenario_done
