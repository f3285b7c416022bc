#!/bin/bash
# Issue 15: /etc/daxguard/daxguard.conf and the job identity, with a real
# program (regmatrix) registering an fs-DAX file on rxe0: a rule selecting
# warn for one program name and enforce for another, a program excluded,
# the environment over the file, a malformed file reported once with its
# line while the defaults apply, the default path, and the MPI rank and
# Slurm job in the refusal line, the records and the rules.
#   tests/guest/run tests/scenarios/config.sh
source "$(dirname "$0")/../guest/lib.sh"

BIN=/opt/daxguard/bin
SHIM=/opt/daxguard/lib/libdaxguard.so
require_file "$SHIM" "build with tests/all"
require_file "$BIN/regmatrix" "build with tests/all"
W=$(mktemp -d /tmp/config.XXXXXX)
make_file /mnt/pmem/cf 2
make_file /mnt/pmem/cf2 1
# The same program under four names: its comm, exe and argv[0] say each.
for name in regwarn regenforce regskip; do
	cp "$BIN/regmatrix" "$W/$name"
done
CONF=$W/daxguard.conf
LOG=$W/audit.jsonl

# Registers the fs-DAX file and anonymous memory as PROGRAM under the shim
# with CONF, plus ENV words; stdout+stderr in OUT, records in RECS.
reg() { # program [env...]
	local prog=$1
	shift
	rm -f "$LOG"
	OUT=$(env DAXGUARD_CONFIG="$CONF" "$@" LD_PRELOAD="$SHIM" "$prog" --device "$RDMA_DEV" \
		d=file:/mnt/pmem/cf:2M a=anon:2M 2>&1)
	RECS=$(cat "$LOG" 2>/dev/null)
}

count() { # pattern text
	printf '%s\n' "$2" | grep -c -- "$1"
}

cat >"$CONF" <<EOF
# The top of the file applies to every process; sections override it.
mode = audit
log = $LOG

exclude program=regskip

[match program=regwarn]
mode = warn

[match program=regenforce]
mode = enforce
EOF

section "warn for one program name, enforce for another"
reg "$W/regwarn"
assert_contains "$OUT" "daxguard: warning: would refuse ibv_reg_mr_iova2(" "regwarn: warned"
assert_contains "$OUT" "d EOPNOTSUPP" "regwarn: forwarded, the kernel refused"
assert_contains "$OUT" "a ok" "regwarn: anonymous memory registered"
assert_contains "$RECS" '"program":"regwarn","rank":null,"job":null,"step":null,"consumer":"rdma"' "regwarn: record, no job"
assert_contains "$RECS" '"mode":"warn","verdict":"fsdax","reason":"warned","file":"/mnt/pmem/cf"' "regwarn: mode warn recorded"
reg "$W/regenforce"
assert_contains "$OUT" "daxguard: refused ibv_reg_mr_iova2(" "regenforce: refused by daxguard"
assert_contains "$OUT" "/mnt/pmem/cf is on filesystem-DAX" "regenforce: the file named"
assert_contains "$OUT" "d EOPNOTSUPP" "regenforce: EOPNOTSUPP"
assert_contains "$RECS" '"mode":"enforce","verdict":"fsdax","reason":"fsdax","file":"/mnt/pmem/cf"' "regenforce: mode enforce recorded"
assert_contains "$RECS" '"action":"refused"' "regenforce: refused record"
reg "$BIN/regmatrix"
assert_not_contains "$OUT" "daxguard:" "regmatrix (no section): audit, nothing on stderr"
assert_contains "$RECS" '"mode":"audit","verdict":"fsdax","reason":"audited"' "regmatrix: the top's audit"

section "excluded by program name"
reg "$W/regskip"
assert_not_contains "$OUT" "daxguard:" "regskip: daxguard says nothing"
assert_contains "$OUT" "d EOPNOTSUPP" "regskip: the kernel alone refuses"
assert_eq 0 "$(count . "$RECS")" "regskip: mode off, no records"

section "the environment overrides the file"
reg "$W/regwarn" DAXGUARD_MODE=enforce
assert_contains "$OUT" "daxguard: refused ibv_reg_mr_iova2(" "DAXGUARD_MODE=enforce beats the file's warn"
assert_contains "$RECS" '"mode":"enforce"' "the record says enforce"
reg "$W/regskip" DAXGUARD_MODE=warn
assert_contains "$OUT" "daxguard: warning: would refuse" "DAXGUARD_MODE beats the exclusion"
reg "$W/regenforce" DAXGUARD_LOG="$W/env.jsonl"
assert_eq 0 "$(count . "$RECS")" "DAXGUARD_LOG beats the file's log: nothing there"
assert_eq 2 "$(count . "$(cat "$W/env.jsonl")")" "two records in the environment's log"

section "a malformed file: reported once, the defaults apply"
cat >"$CONF" <<EOF
mode = warn
log = $LOG
[match program=regwarn rank=one]
mode = off
EOF
OUT=$(DAXGUARD_CONFIG="$CONF" LD_PRELOAD="$SHIM" "$W/regwarn" --device "$RDMA_DEV" \
	d=file:/mnt/pmem/cf:2M e=file:/mnt/pmem/cf2:1M a=anon:2M 2>&1)
assert_eq 1 "$(count 'the file is ignored' "$OUT")" "one complaint for three registrations"
assert_contains "$OUT" "daxguard: $CONF:3: \"rank=one\": a rank is N, N-M (N <= M) or N-, comma-separated; the file is ignored, the defaults apply" "file:line and what is wrong"
assert_eq 2 "$(count 'daxguard: refused ibv_reg_mr_iova2' "$OUT")" "enforce, the default: both fs-DAX ranges refused"
assert_contains "$OUT" "a ok" "anonymous memory registered"
[[ ! -e $LOG ]] || fail "the malformed file's log was opened: half applied"
ok "nothing of the file applied (no log opened, not warn)"

section "the default path, /etc/daxguard/daxguard.conf"
mkdir -p /etc/daxguard
printf 'log = %s\n[match program=regwarn]\nmode = warn\n' "$LOG" >/etc/daxguard/daxguard.conf
rm -f "$LOG"
OUT=$(LD_PRELOAD="$SHIM" "$W/regwarn" --device "$RDMA_DEV" d=file:/mnt/pmem/cf:2M 2>&1)
assert_contains "$OUT" "daxguard: warning: would refuse" "read without DAXGUARD_CONFIG"
assert_contains "$(cat "$LOG")" '"mode":"warn"' "its log is used"
OUT=$(DAXGUARD_CONFIG='' LD_PRELOAD="$SHIM" "$W/regwarn" --device "$RDMA_DEV" d=file:/mnt/pmem/cf:2M 2>&1)
assert_contains "$OUT" "daxguard: refused" "DAXGUARD_CONFIG= (empty): no file, enforce"
rm -rf /etc/daxguard

section "MPI rank and Slurm job: in the lines, the records and the rules"
cat >"$CONF" <<EOF
log = $LOG
[match rank=1- job=42]
mode = warn
EOF
reg "$BIN/regmatrix" OMPI_COMM_WORLD_RANK=0 SLURM_JOB_ID=42 SLURM_STEP_ID=0
line=$(printf '%s\n' "$OUT" | grep 'daxguard: refused')
assert_contains "$line" "/mnt/pmem/cf is on filesystem-DAX" "rank 0: refused, the file named"
[[ $line == *" (rank 0, Slurm job 42 step 0)" ]] || fail "the refusal line ends with the rank and job: $line"
ok "the refusal line ends with ' (rank 0, Slurm job 42 step 0)'"
assert_contains "$RECS" '"program":"regmatrix","rank":0,"job":"42","step":"0"' "rank 0: the record names rank and job"
reg "$BIN/regmatrix" PMIX_RANK=1 SLURM_JOB_ID=42
assert_contains "$OUT" "daxguard: warning: would refuse" "rank 1 of job 42: the rule's warn"
assert_contains "$OUT" "(rank 1, Slurm job 42)" "the warning names rank 1"
reg "$BIN/regmatrix" SLURM_PROCID=3 SLURM_JOB_ID=43
assert_contains "$OUT" "daxguard: refused" "job 43: the rule does not apply"
assert_contains "$OUT" "rank 3" "SLURM_PROCID is the rank when no MPI says one"
# Outside a job the line is as it always was: it ends with the remedy.
OUT=$(DAXGUARD_CONFIG='' LD_PRELOAD="$SHIM" regmatrix --device "$RDMA_DEV" d=file:/mnt/pmem/cf:2M 2>&1)
line=$(printf '%s\n' "$OUT" | grep 'daxguard: refused')
[[ $line == *"or use IBV_ACCESS_ON_DEMAND" ]] || fail "no job: the line changed: $line"
ok "no job: the refusal line ends as before"
assert_kernel_clean
scenario_done
