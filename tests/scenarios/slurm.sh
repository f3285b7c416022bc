#!/bin/bash
# Issue 15, a distributed job through Slurm (Debian 12's 22.05): munged,
# slurmctld and slurmd on this one node, no cgroups (proctrack/linuxproc,
# task/none), no accounting; daxguard's SPANK plugin (tools/dist/spank) in
# plugstack.conf, and its TaskProlog alternative in slurm.conf. The job is
# tests/c/mpiwin, 2 ranks launched by srun through PMIx (Open MPI 4.1.4,
# pml and osc ucx over rxe0, as in mpi.sh):
#   srun --daxguard=enforce  fs-DAX window refused by daxguard, naming each
#                            rank's file; an anonymous window works
#   srun --daxguard=warn     daxguard warns and forwards; the kernel refuses
#   srun (no option)         untouched: no preload, only UCX's error
#   DAXGUARD_MODE=enforce srun (TaskProlog)   refused as with the plugin
#   srun --daxguard=bogus    srun refuses the option
#   sbatch --daxguard=warn   the batch script and its steps get it
#   tests/guest/run tests/scenarios/slurm.sh
# guest-layer: mpi
# shellcheck source=tests/guest/lib.sh
source "$(dirname "$0")/../guest/lib.sh"

LIBDIR=/opt/daxguard/lib
LIB=${DAXGUARD_LIB:-$LIBDIR/libdaxguard.so}
SPANK=$LIBDIR/daxguard_spank.so
PROLOG=$LIBDIR/daxguard-taskprolog
require_file "$LIB" "cargo build --release"
require_file "$SPANK" "make -C tools/dist/spank (needs libslurm-dev)"
require_file "$PROLOG" "make -C tools/dist/spank"
require_file /opt/daxguard/bin/mpiwin "make -C tests/c (needs libopenmpi-dev)"
command -v slurmctld >/dev/null || fail "no slurmctld: the mpi layer is missing (# guest-layer: mpi)"
W=$(mktemp -d /tmp/slurm.XXXXXX)
TIMES=()

run() { # name cmd...   output (stdout and stderr) in $W/NAME.out; RC, OUT
	local name=$1 t0=$SECONDS
	shift
	RC=0
	timeout -k 5 180 "$@" >"$W/$name.out" 2>&1 || RC=$?
	TIMES+=("$(printf '%-22s %4d s' "$name" $((SECONDS - t0)))")
	OUT=$(cat "$W/$name.out")
	echo "$name: exit $RC"
	sed 's/^/  | /' "$W/$name.out" | head -n 30
}

# What srun -l printed for task T, without the label.
task_lines() { # file task
	sed -n "s/^ *$2: //p" "$1"
}

section "munge, slurmctld and slurmd on $(hostname)"
t0=$SECONDS
host=$(hostname)
grep -q " $host\$" /etc/hosts || echo "127.0.0.1 $host" >>/etc/hosts
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge /etc/slurm \
	/var/spool/slurmctld /var/spool/slurmd /var/log/slurm
chmod 700 /etc/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
mungekey --create --force --keyfile=/etc/munge/munge.key || fail "mungekey"
chmod 400 /etc/munge/munge.key
munged || fail "munged did not start: $(tail -n 5 /var/log/munge/munged.log 2>/dev/null)"
expect_status 0 bash -c 'munge -n | unmunge >/dev/null'

# This node as slurmd sees it (CPUs, sockets, memory).
node=$(slurmd -C | head -n1)
[[ $node == "NodeName=$host "* ]] || fail "slurmd -C: $node"
cat >/etc/slurm/slurm.conf <<EOF
ClusterName=guest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
PlugStackConfig=/etc/slurm/plugstack.conf
TaskProlog=$PROLOG
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
# slurmd 22.05 loads a cgroup plugin whatever the proctrack and task plugins
# are, and fails without a cgroup filesystem. The legacy (v1) one, mounted
# by slurmd itself on a tmpfs: cgroup/v2 wants systemd to delegate to it.
# Nothing here tracks or confines through it (proctrack/linuxproc, task/none).
grep -q ' /sys/fs/cgroup ' /proc/self/mountinfo || mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup ||
	fail "mount tmpfs on /sys/fs/cgroup"
printf '%s\n' CgroupPlugin=cgroup/v1 CgroupAutomount=yes >/etc/slurm/cgroup.conf
# The plugin, told where the library is here (the .deb's path is its default).
echo "required $SPANK lib=$LIB" >/etc/slurm/plugstack.conf
slurmctld || fail "slurmctld did not start: $(tail -n 5 /var/log/slurm/slurmctld.log)"
slurmd || fail "slurmd did not start: $(tail -n 5 /var/log/slurm/slurmd.log)"
n=600
until [[ $(sinfo -h -o %T 2>/dev/null) == idle ]]; do
	((n-- > 0)) || fail "the node is not idle after 60 s: $(sinfo 2>&1; tail -n 5 /var/log/slurm/slurmctld.log)"
	sleep 0.1
done
ok "sinfo: $host idle ($((SECONDS - t0)) s to start munge and Slurm)"
TIMES+=("$(printf '%-22s %4d s' setup $((SECONDS - t0)))")

section "the plugin: srun --daxguard sets the task's environment, and only then"
run help srun --help
assert_contains "$OUT" "--daxguard=MODE" "srun --help lists --daxguard"
# shellcheck disable=SC2016 # expanded in the task
show='echo "LD_PRELOAD=[${LD_PRELOAD-unset}] DAXGUARD_MODE=[${DAXGUARD_MODE-unset}]"'
run env_warn srun -n1 --daxguard=warn bash -c "$show"
assert_eq "LD_PRELOAD=[$LIB] DAXGUARD_MODE=[warn]" "$OUT" "srun --daxguard=warn: the task's environment"
run env_none srun -n1 bash -c "$show"
assert_eq "LD_PRELOAD=[unset] DAXGUARD_MODE=[unset]" "$OUT" "srun without --daxguard: untouched"
# default=MODE in plugstack.conf (read anew by srun and each slurmstepd):
# every step gets it, --daxguard=off opts one out.
echo "required $SPANK lib=$LIB default=audit" >/etc/slurm/plugstack.conf
run env_default srun -n1 bash -c "$show"
assert_eq "LD_PRELOAD=[$LIB] DAXGUARD_MODE=[audit]" "$OUT" "plugstack.conf default=audit: every step"
run env_off srun -n1 --daxguard=off bash -c "$show"
assert_eq "LD_PRELOAD=[unset] DAXGUARD_MODE=[unset]" "$OUT" "default=audit, srun --daxguard=off: untouched"
echo "required $SPANK lib=$LIB" >/etc/slurm/plugstack.conf
run bogus srun -n1 --daxguard=bogus true
assert_ne 0 "$RC" "srun --daxguard=bogus exit status"
assert_contains "$OUT" "--daxguard wants enforce, warn, audit, odp or off, not 'bogus'" "srun --daxguard=bogus"

# sbatch --daxguard: the batch script's own environment, and a step's.
t0=$SECONDS
job=$(sbatch --parsable -o "$W/batch.out" --daxguard=warn --wrap "$show; srun -n1 bash -c '$show'") ||
	fail "sbatch --daxguard=warn"
n=600
while squeue -h -j "$job" 2>/dev/null | grep -q .; do
	((n-- > 0)) || fail "batch job $job still queued or running after 60 s"
	sleep 0.1
done
TIMES+=("$(printf '%-22s %4d s' sbatch $((SECONDS - t0)))")
sed 's/^/  | /' "$W/batch.out"
assert_eq "LD_PRELOAD=[$LIB] DAXGUARD_MODE=[warn]
LD_PRELOAD=[$LIB] DAXGUARD_MODE=[warn]" "$(cat "$W/batch.out")" "sbatch --daxguard=warn: the script and its step"

section "MPI under srun"
run mpilist srun --mpi=list
assert_contains "$OUT" "pmix" "srun --mpi=list offers PMIx"
# Open MPI's component choice and UCX's settings, passed by srun (--export=ALL).
export OMPI_MCA_pml=ucx OMPI_MCA_osc=ucx UCX_NET_DEVICES=rxe0:1 UCX_UD_VERBS_ETH_DGID_CHECK=n
SRUN=(srun -l -n2 --mpi=pmix)

run anon "${SRUN[@]}" --daxguard=enforce mpiwin anon
assert_eq 0 "$RC" "srun --daxguard=enforce mpiwin anon exit status"
for r in 0 1; do
	assert_contains "$(task_lines "$W/anon.out" $r)" "rank $r: window over anonymous memory: put/get of 1048576 bytes ok" "task $r: anonymous window"
done
assert_not_contains "$OUT" "daxguard:" "anonymous memory: daxguard says nothing"

# Each rank's own fs-DAX window: daxguard's line (enforce or warn) names its file.
check_fsdax() { # name what
	local r lines line
	for r in 0 1; do
		lines=$(task_lines "$W/$1.out" $r)
		line=$(grep -m1 "daxguard: $2" <<<"$lines")
		assert_contains "$line" "daxguard: $2 ibv_reg_mr" "task $r: daxguard's '$2' line"
		assert_contains "$line" "/mnt/pmem/mpiwin.rank$r is on filesystem-DAX" "task $r: names its own file"
		assert_contains "$line" "rank $r" "task $r: names its rank"
		assert_contains "$line" "Slurm job" "task $r: names the Slurm job"
		assert_contains "$lines" "failed: Operation not supported" "task $r: UCX's error follows"
	done
}

run enforce "${SRUN[@]}" --daxguard=enforce mpiwin fsdax
assert_ne 0 "$RC" "srun --daxguard=enforce mpiwin fsdax exit status"
check_fsdax enforce refused

run warn "${SRUN[@]}" --daxguard=warn mpiwin fsdax
assert_ne 0 "$RC" "srun --daxguard=warn mpiwin fsdax exit status (the kernel refuses)"
check_fsdax warn "warning: would refuse"
assert_contains "$OUT" "(DAXGUARD_MODE=warn: forwarded)" "warn: forwarded to the kernel"
assert_not_contains "$OUT" "daxguard: refused" "warn: nothing refused by daxguard"

run none "${SRUN[@]}" mpiwin fsdax
assert_ne 0 "$RC" "srun mpiwin fsdax exit status"
assert_not_contains "$OUT" "daxguard:" "without --daxguard: untouched"
for r in 0 1; do
	assert_contains "$(task_lines "$W/none.out" $r)" "ibv_reg_mr(" "task $r: only UCX's error"
done

section "the TaskProlog alternative: DAXGUARD_MODE in the job's environment"
export DAXGUARD_MODE=enforce
run prolog "${SRUN[@]}" mpiwin fsdax
unset DAXGUARD_MODE
assert_ne 0 "$RC" "DAXGUARD_MODE=enforce srun mpiwin fsdax exit status"
check_fsdax prolog refused

section "times"
printf '%s\n' "${TIMES[@]}"
assert_kernel_clean
scenario_done
