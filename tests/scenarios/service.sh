#!/bin/bash
# Issue 15: turned on for one systemd service. systemd runs as the first
# process of a PID namespace (as in a container: the guest has no systemd as
# its init), booted into a target of the scenario's own. A service whose
# program registers an fs-DAX file and anonymous memory on rxe0 is started
# before and after `daxguard enable --unit`: before, the kernel refuses alone;
# after, `systemctl cat` shows the drop-in and daxguard refuses, naming the
# file, while a second service stays untouched; `disable --unit` takes it away.
source "$(dirname "$0")/../guest/lib.sh"
require_file /opt/daxguard/bin/daxguard "build with tests/all"
require_file /opt/daxguard/bin/regmatrix "build with tests/all"
LIB=${DAXGUARD_LIB:-/opt/daxguard/lib/libdaxguard.so}
W=$(mktemp -d /tmp/service.XXXXXX)
UNITS=/etc/systemd/system

section "systemd, booted in its own PID namespace"
mkdir -p "$UNITS"
printf '[Unit]\nDescription=service.sh: nothing but what the scenario starts\n' >"$UNITS/scenario.target"
make_file /mnt/pmem/svc 2
for unit in demo other; do
	# No default dependencies: this systemd has no sysinit.target & co.
	cat >"$UNITS/$unit.service" <<EOF
[Unit]
DefaultDependencies=no
[Service]
Type=oneshot
ExecStart=/opt/daxguard/bin/regmatrix --device $RDMA_DEV f=file:/mnt/pmem/svc:2M a=anon:2M
StandardOutput=append:$W/$unit.out
StandardError=append:$W/$unit.out
EOF
done
# container=: systemd then treats its namespace as a container and leaves
# the guest's kernel settings and devices alone.
container=daxguard unshare --pid --fork --mount --propagation private \
	/usr/lib/systemd/systemd --system --unit=scenario.target --log-target=kmsg >"$W/systemd.log" 2>&1 &
UNSHARE=$!
SD=
for _ in $(seq 300); do
	# unshare's one child is systemd (pid 1 in the namespace).
	SD=$(cat "/proc/$UNSHARE/task/$UNSHARE/children" 2>/dev/null)
	SD=${SD// /}
	if [[ -n $SD ]] &&
		nsenter -t "$SD" -m -p systemctl is-system-running 2>/dev/null | grep -qE 'running|degraded'; then
		break
	fi
	sleep 0.1
done
[[ -n $SD ]] || fail "systemd did not start: $(cat "$W/systemd.log")"
sc() { nsenter -t "$SD" -m -p systemctl "$@"; }
state=$(sc is-system-running 2>&1)
[[ $state == running || $state == degraded ]] || fail "systemd did not come up ($state): $(dmesg | grep systemd | tail -n 20)"
ok "systemd is $state (pid $SD here, 1 in its namespace)"

# Starts a oneshot unit and prints what its program wrote (or why not).
# (Both streams append to one file, emptied here: truncate: for one of them
# would have the two overwrite each other.)
run_unit() {
	: >"$W/$1.out"
	sc start "$1.service" 2>&1 || sc status "$1.service" 2>&1 | tail -n 5
	cat "$W/$1.out"
}

section "before: the kernel refuses alone"
out=$(run_unit demo)
assert_contains "$out" "f EOPNOTSUPP" "demo: the kernel's answer"
assert_not_contains "$out" "daxguard:" "demo: no daxguard yet"

section "daxguard enable --unit demo"
out=$(daxguard enable --unit demo 2>&1)
assert_contains "$out" "next: systemctl daemon-reload && systemctl restart demo.service" "enable: next steps"
expect_status 0 sc daemon-reload
out=$(sc cat demo.service 2>&1)
assert_contains "$out" "# $UNITS/demo.service.d/daxguard.conf" "systemctl cat: the drop-in"
assert_contains "$out" "Environment=LD_PRELOAD=$LIB" "systemctl cat: the preload"
assert_contains "$(sc show -p Environment demo.service)" "LD_PRELOAD=$LIB" "systemd's own view of the unit"
out=$(run_unit demo)
assert_contains "$out" "daxguard: refused ibv_reg_mr" "demo: daxguard's refusal"
assert_contains "$out" "/mnt/pmem/svc is on filesystem-DAX" "demo: the file named"
assert_contains "$out" "f EOPNOTSUPP" "demo: the kernel's errno"
assert_contains "$out" "a ok" "demo: anonymous memory registers"
out=$(run_unit other)
assert_contains "$out" "f EOPNOTSUPP" "other: the kernel's answer"
assert_not_contains "$out" "daxguard:" "other: untouched"

section "daxguard disable --unit demo"
out=$(daxguard disable --unit demo 2>&1)
assert_contains "$out" "removed $UNITS/demo.service.d/daxguard.conf" "disable: the drop-in removed"
expect_status 0 sc daemon-reload
assert_not_contains "$(sc cat demo.service 2>&1)" "LD_PRELOAD" "systemctl cat: no drop-in"
out=$(run_unit demo)
assert_not_contains "$out" "daxguard:" "demo: daxguard gone"
assert_contains "$out" "f EOPNOTSUPP" "demo: the kernel still refuses"

kill -KILL "$SD" # the namespace's first process: all of it ends
scenario_done
