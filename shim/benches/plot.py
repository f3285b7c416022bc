#!/usr/bin/env python3
"""Reads the medians of the last `cargo bench -p daxguard` run from
target/criterion, renders docs/classify-latency.png (latency against VMA
count, one line per path, log-log) and prints the markdown tables of
docs/benchmarks.md with the targets checked.

usage: python3 shim/benches/plot.py [--criterion DIR] [--png PATH]
Needs matplotlib (pip install matplotlib).
"""

import argparse
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
TIERS = ["10", "1000", "10000", "20000", "60000"]
RANGES = [("anon-4k", "anonymous 4 KiB"), ("anon-1g", "anonymous 1 GiB"),
          ("file", "cached file page"), ("span16", "16 VMAs")]


def load(crit):
    """{full_id: median ns} for every benchmark criterion has results for."""
    med = {}
    for bench in crit.glob("**/new/benchmark.json"):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())
        med[meta["full_id"]] = est["median"]["point_estimate"]
    return med


def fmt(ns):
    if ns is None:
        return "-"
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns / 1e6:.2f} ms"


def table(med, counts, rows):
    """rows: (label, id prefix) -> one row per label, one column per tier."""
    head = "| | " + " | ".join(f"{counts[t]['vmas']} VMAs" for t in TIERS) + " |"
    out = [head, "|---|" + "---:|" * len(TIERS)]
    for label, prefix in rows:
        out.append(f"| {label} | " + " | ".join(fmt(med.get(f"{prefix}/{t}")) for t in TIERS) + " |")
    return "\n".join(out)


def met(ok):
    return "met" if ok else "**not met**"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--criterion", default=ROOT / "target" / "criterion", type=pathlib.Path)
    ap.add_argument("--png", default=ROOT / "docs" / "classify-latency.png", type=pathlib.Path)
    a = ap.parse_args()
    med = load(a.criterion)
    counts = json.loads((a.criterion / "vma-counts.json").read_text())
    if not med:
        sys.exit(f"no criterion results under {a.criterion}")

    for what, title in [("judge", "`judge` (the shim's hot path: verdict only)"),
                        ("classify", "`classify_with` (the full report)")]:
        print(f"### {title}, median\n")
        rows = [(f"{p} path, {name}", f"{what}/{pfx}-{r}")
                for pfx, p in [("query", "PROCMAP_QUERY"), ("text", "maps text")] for r, name in RANGES]
        print(table(med, counts, rows) + "\n")
    print("### Baselines, median\n")
    print(table(med, counts, [
        ("one getpid syscall", "baseline/getpid-syscall"),
        ("one raw PROCMAP_QUERY ioctl", "baseline/procmap-query-ioctl"),
        ("one poll of mountinfo", "baseline/poll-mountinfo"),
        ("read /proc/self/maps up to the range", "baseline/maps-to-range"),
        ("read /proc/self/maps to the end", "baseline/maps-to-end"),
        ("naive: read all of /proc/self/smaps, find the range", "baseline/smaps-per-call"),
    ]) + "\n")

    # Targets.
    print("### Targets\n")
    print("| target | measured | |\n|---|---|---|")
    for r, name in [("anon-4k", "anonymous 4 KiB"), ("file", "cached file page")]:
        lo, hi = med.get(f"judge/query-{r}/10"), med.get(f"judge/query-{r}/60000")
        worst = max(med.get(f"judge/query-{r}/{t}", 0) for t in TIERS)
        print(f"| judge, PROCMAP_QUERY, {name}: <= 1 µs median | {fmt(worst)} at worst | {met(worst <= 1000)} |")
        print(f"| same, 60k / 10 VMAs <= 1.5 | {hi / lo:.2f} | {met(hi / lo <= 1.5)} |")
    floor = max(med.get(f"baseline/procmap-query-ioctl/{t}", 0) + med.get(f"baseline/poll-mountinfo/{t}", 0)
                for t in TIERS)
    print(f"| (cached file floor: one ioctl + one poll, worst tier) | {fmt(floor)} | |")
    ratios = [med[f"judge/text-anon-4k/{t}"] / med[f"baseline/maps-to-range/{t}"] for t in TIERS]
    print(f"| (criterion groups run one after the other: judge, maps text / maps up to the range) | "
          f"{' / '.join(f'{x:.2f}' for x in ratios)} (10 ... 60k VMAs) | |")
    paired = [json.loads((a.criterion / f"fallback-paired-{t}.json").read_text()) for t in TIERS]
    ratios = [p["judge_ns"] / p["maps_ns"] for p in paired]
    print(f"| judge, maps text, anonymous 4 KiB: <= 1.2 x reading maps up to the range (alternating pairs) | "
          f"{' / '.join(f'{x:.2f}' for x in ratios)} (10 ... 60k VMAs; "
          f"{min(p['pairs'] for p in paired)}-{max(p['pairs'] for p in paired)} pairs) | {met(max(ratios) <= 1.2)} |")
    for what in ["judge", "classify"]:
        x = med["baseline/smaps-per-call/20000"] / med[f"{what}/query-anon-4k/20000"]
        print(f"| smaps per call / {what} PROCMAP_QUERY at 20k VMAs >= 100 | {x:,.0f} x | {met(x >= 100)} |")
    x = med["baseline/smaps-per-call/20000"] / med["judge/text-anon-4k/20000"]
    print(f"| (the maps-text fallback against the same: reading maps text instead of smaps) | {x:,.1f} x | |")
    off, direct = med.get("mode-off/shim-export-off"), med.get("mode-off/direct-stub")
    if off and direct:
        print(f"| DAXGUARD_MODE=off: added cost per call <= 50 ns | {off - direct:.1f} ns "
              f"({fmt(off)} through the shim, {fmt(direct)} direct) | {met(off - direct <= 50)} |")
    enf, direct = med.get("guard/shim-export-enforce-anon-4k"), med.get("guard/direct-stub")
    if enf and direct:
        print(f"| (enforce mode, anonymous 4 KiB, whole export: no target) | {fmt(enf - direct)} added | |")
    print()

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    x = [counts[t]["vmas"] for t in TIERS]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    lines = [
        ("judge, PROCMAP_QUERY path", "judge/query-anon-4k", "o-"),
        ("judge, maps-text fallback path", "judge/text-anon-4k", "s-"),
        ("read /proc/self/maps up to the range", "baseline/maps-to-range", "^--"),
        ("naive: read /proc/self/smaps per call", "baseline/smaps-per-call", "v--"),
        ("one raw PROCMAP_QUERY ioctl (floor)", "baseline/procmap-query-ioctl", "x:"),
    ]
    for label, prefix, style in lines:
        y = [med[f"{prefix}/{t}"] / 1e3 for t in TIERS]
        ax.plot(x, y, style, label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("VMAs in the process")
    ax.set_ylabel("median latency per call (µs)")
    ax.set_title("daxguard: judging 4 KiB of anonymous memory above all other VMAs")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.png, dpi=110)
    print(f"wrote {a.png}", file=sys.stderr)


if __name__ == "__main__":
    main()
