"""Run every benchmark and render the results.

    python benchmarks/run_all.py --quick            # pipeline check, a few minutes on a 2-core CPU
    python benchmarks/run_all.py --workers 2        # the full runs (see benchmarks/README.md for durations)

Quick mode writes ``benchmarks/results/quick/*.json`` and ``benchmarks/results/quick/RESULTS.md``; the full
runs write ``benchmarks/results/full/*.json`` and ``benchmarks/RESULTS.md``. Each script runs in its own
process; ``--only`` picks some of them, ``--resume`` keeps finished runs of an interrupted earth/robot run.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPTS = ("earth_nll", "robot_nll", "speed")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--only", default=",".join(SCRIPTS), help=f"comma list from {SCRIPTS}")
    p.add_argument("--workers", type=int, default=1, help="parallel runs for earth_nll and robot_nll")
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--results", type=Path, help="output folder (default results/quick or results/full)")
    p.add_argument("--extra", action="append", default=[], metavar="SCRIPT:ARGS",
                   help="extra arguments for one script, e.g. 'earth_nll:--objectives cnfm,rfm,moser'")
    args = p.parse_args(argv)
    out = args.results or HERE / "results" / ("quick" if args.quick else "full")
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SCRIPTS]
    if unknown:
        p.error(f"--only: unknown {unknown}; valid: {SCRIPTS}")
    extra = {}
    for e in args.extra:
        name, _, rest = e.partition(":")
        extra.setdefault(name, []).extend(rest.split())
    t0 = time.perf_counter()
    for name in only:
        cmd = [sys.executable, str(HERE / f"{name}.py"), "--out", str(out / f"{name}.json"),
               "--threads", str(args.threads)]
        if args.quick:
            cmd.append("--quick")
        if name != "speed":
            cmd += ["--workers", str(args.workers)] + (["--resume"] if args.resume else [])
        cmd += extra.get(name, [])
        print("+", " ".join(cmd), flush=True)
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        print(f"{name}: {time.perf_counter() - t:.0f} s", flush=True)
    report = out / "RESULTS.md" if args.quick or args.results else HERE / "RESULTS.md"
    note = ("QUICK MODE: a pipeline check with tiny models and step counts; these numbers say nothing about "
            "posegen's quality or speed.") if args.quick else None
    cmd = [sys.executable, str(HERE / "make_results.py"), "--results", str(out), "--out", str(report)]
    if note:
        cmd += ["--note", note]
    subprocess.run(cmd, check=True)
    print(f"all done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
