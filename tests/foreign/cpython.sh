#!/usr/bin/env bash
# CPython's own tests, which nobody here wrote, run three times: without
# any preload, with libdaxguard.so preloaded in its default mode, and
# preloaded with DAXGUARD_LOG set. Every test case must end the same way
# (passed, failed, errored or skipped) in all three, and every test module
# too; a difference fails and names the test.
#
# The modules exercise what the shim interposes or touches in a process:
# ioctl (test_ioctl, test_fcntl, test_pty), syscall and raw calls through
# ctypes (test_ctypes), mmap (test_mmap), signals, masks and handlers
# (test_signal, test_threading), fork/exec and descriptor inheritance
# (test_subprocess, test_os, test_posix), descriptor-heavy polling
# (test_select, test_selectors). They run under `script` so that they
# have a controlling terminal (test_ioctl skips itself without /dev/tty).
#
# usage: tests/foreign/cpython.sh [TEST_MODULE...]
#   DAXGUARD_SO   the library to preload (default target/release/libdaxguard.so)
#   PYTHON        the interpreter whose test suite is installed (default /usr/bin/python3.11,
#                 Debian's libpython3.11-testsuite; tests/steps.sh installs it)
#   CPYTHON_JOBS  regrtest -j (default 2)
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
so="${DAXGUARD_SO:-$root/target/release/libdaxguard.so}"
python="${PYTHON:-/usr/bin/python3.11}"
jobs="${CPYTHON_JOBS:-2}"
modules=("$@")
((${#modules[@]})) || modules=(test_os test_mmap test_subprocess test_signal test_threading test_fcntl
	test_ioctl test_posix test_select test_pty test_ctypes test_selectors)

die() {
	echo "cpython: $*" >&2
	exit 2
}
[[ -f $so ]] || die "$so not built (cargo build --release -p daxguard)"
[[ -x $python ]] || die "$python not found"
"$python" -c 'import test.test_os' 2>/dev/null || die "no test suite for $python (apt-get install libpython3.11-testsuite)"
command -v script >/dev/null || die "script (util-linux) not found"

work="$(mktemp -d /tmp/daxguard-cpython.XXXXXX)"
trap '[[ -n ${KEEP_WORK:-} ]] || rm -rf "$work"' EXIT
chmod 755 "$work"

# One configuration: regrtest under a pseudo-terminal, its own working
# directory, the environment less any preload of ours plus $@. regrtest's
# -j workers start new sessions, which have no controlling terminal, so
# test_ioctl (which needs /dev/tty) runs in a second, sequential pass.
run() { # name VAR=VALUE...
	local name=$1 m par=() seq=() env cmd log
	shift
	for m in "${modules[@]}"; do
		if [[ $m == test_ioctl ]]; then seq+=("$m"); else par+=("$m"); fi
	done
	mkdir -p "$work/$name"
	log=$(printf %q "$work/$name.log")
	env=$(printf '%q ' env -u LD_PRELOAD -u DAXGUARD_LOG "$@" "$python" -m test)
	cmd=":"
	((${#par[@]})) && cmd+="; $env -j$jobs --junit-xml $(printf %q "$work/$name-par.xml") $(printf '%q ' "${par[@]}") >>$log 2>&1"
	((${#seq[@]})) && cmd+="; $env --junit-xml $(printf %q "$work/$name-seq.xml") $(printf '%q ' "${seq[@]}") >>$log 2>&1"
	(cd "$work/$name" && script -qec "$cmd" /dev/null </dev/null >/dev/null)
}

start=$SECONDS
run plain &
run preload "LD_PRELOAD=$so" &
run logged "LD_PRELOAD=$so" "DAXGUARD_LOG=$work/audit.jsonl" &
wait
echo "cpython: ${modules[*]}: 3 runs in $((SECONDS - start)) s (-j$jobs, side by side)"

"$python" - "$work" "${modules[@]}" <<'PY'
import re, sys, xml.etree.ElementTree as ET
from pathlib import Path

work = Path(sys.argv[1])
MODULES = sys.argv[2:]
runs = ["plain", "preload", "logged"]


def cases(name):
    """Each test case's outcome: passed, failure, error or skipped."""
    out = {}
    for path in sorted(work.glob(f"{name}-*.xml")):
        for tc in ET.parse(path).getroot().iter("testcase"):
            kids = {k.tag for k in tc}
            out[tc.get("name")] = next((k for k in ("error", "failure", "skipped") if k in kids), "passed")
    return out


def modules(name):
    """Each module's outcome: from the progress lines ("[ 3/11] test_pty passed"),
    then regrtest's summary lists ("1 test skipped:" and the names under it).
    A module named nowhere passed (regrtest does not list passing ones)."""
    out, current = {m: "passed" for m in MODULES}, None
    for line in (work / f"{name}.log").read_text(errors="replace").splitlines():
        progress = re.search(r"\[\s*\d+/\d+\] (test_\w+) (\w+)", line)
        head = re.match(r"^(?:All )?\d+ tests? (.*?)[.:]?$", line)
        if progress:
            out[progress.group(1)] = progress.group(2)
        elif head:
            current = head.group(1)
        elif current and line.startswith("    "):
            for m in line.split():
                out[m] = current
        elif not line.strip():
            current = None
    return out


results = {r: (cases(r), modules(r)) for r in runs}
bad = []
for kind, i in (("test case", 0), ("module", 1)):
    names = sorted(set().union(*(results[r][i] for r in runs)))
    for n in names:
        got = [results[r][i].get(n, "absent") for r in runs]
        if len(set(got)) > 1:
            bad.append(f"{kind} {n}: " + ", ".join(f"{r} {g}" for r, g in zip(runs, got)))
plain_cases, plain_modules = results["plain"]
count = lambda outcome: sum(1 for v in plain_cases.values() if v == outcome)
print(f"cpython: {len(plain_modules)} modules, {len(plain_cases)} test cases without the preload: "
      f"{count('passed')} passed, {count('failure') + count('error')} failed, {count('skipped')} skipped")
for m, o in sorted(plain_modules.items()):
    print(f"cpython:   {m}: {o}")
audit = work / "audit.jsonl"
records = len(audit.read_text().splitlines()) if audit.exists() else 0
print(f"cpython: audit records written with DAXGUARD_LOG: {records}")
if not plain_cases:
    bad.append("no test case ran without the preload (see the log below)")
for line in bad:
    print(f"cpython: DIFFERS: {line}")
if bad:
    for r in runs:
        print(f"--- {r}.log (end)")
        print("\n".join((work / f"{r}.log").read_text(errors="replace").splitlines()[-25:]))
print(f"cpython: {len(plain_cases) - len([b for b in bad if b.startswith('test case')])} passed, {len(bad)} failed")
sys.exit(1 if bad else 0)
PY
