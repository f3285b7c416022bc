#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a short bounded time; exits non-zero
# on a crash (a panic, a failed invariant, or a sanitizer report).
#
#   tests/fuzz.sh                  # each target FUZZ_SECONDS (default 25) seconds
#   FUZZ_SECONDS=300 tests/fuzz.sh # the long run recorded in docs/reliability.md
#   FUZZ_SANITIZER=none tests/fuzz.sh
#
# Only stable Rust is on these machines: RUSTC_BOOTSTRAP=1 lets it take the
# -Z flags cargo-fuzz passes (sanitizer, coverage). New inputs go to a scratch
# corpus, so the seed corpus in fuzz/corpus/ stays as committed; crashes are
# saved under fuzz/artifacts/TARGET/ (ignored by git).
set -euo pipefail

seconds="${FUZZ_SECONDS:-25}"
sanitizer="${FUZZ_SANITIZER:-address}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

cd "$root/fuzz"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
build_log="$scratch/build.log"

# Build first, so the time below is fuzzing, not compiling. ASan's runtime ships
# with the rust toolchain; if it ever does not, say so and fuzz without it.
if ! cargo fuzz build --sanitizer "$sanitizer" >"$build_log" 2>&1; then
    if [[ "$sanitizer" == none ]]; then
        cat "$build_log"
        exit 1
    fi
    echo "fuzz: build with --sanitizer $sanitizer failed, using --sanitizer none:"
    tail -n 5 "$build_log"
    sanitizer=none
    cargo fuzz build --sanitizer none
fi

passed=0
failed=0
for target in $(cargo fuzz list); do
    mkdir -p "$scratch/$target"
    log="$scratch/$target.log"
    # -timeout: one input may take at most 10 s (a hang is a failure too).
    # The outer timeout only guards against libFuzzer itself not stopping.
    if timeout "$((seconds + 120))" cargo fuzz run --sanitizer "$sanitizer" "$target" \
        "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
        echo "fuzz: $target ok: ${execs:-?} executions in ${seconds}s (sanitizer $sanitizer)"
        passed=$((passed + 1))
    else
        echo "fuzz: $target FAILED (sanitizer $sanitizer):"
        grep -v -E '^ +[0-9]+: |^ +at ' "$log" | tail -n 40
        failed=$((failed + 1))
    fi
done

echo "fuzz: $passed passed, $failed failed"
[[ "$failed" -eq 0 ]]
