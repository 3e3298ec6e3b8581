"""Refined IK sampling of two posegen source trees on the same checkpoint and targets: before / after a change.

    OMP_NUM_THREADS=1 python benchmarks/ik_before_after.py --before /path/to/old/checkout \\
        --checkpoint runs/ik_bench/panda_2min.pt       # JSON to benchmarks/results/ik_before_after_<robot>.json

Each tree runs in its own process (``sys.path`` puts the tree first, and the run checks that ``posegen`` came from
it): ``IKSampler.sample(refine=True)`` with its defaults on ``--targets`` poses (``--target-seed``) x
``--per-target``, ``--chunk`` targets per call; the figure is the best of ``--repeats`` rounds of this thread's
CPU time over the exact solutions the sampler reports (ms per exact solution). The trees take turns, round by
round, at each chunk size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"

_CHILD = r"""
import json, sys, time
root, ck = sys.argv[1], sys.argv[2]
chunk, targets, per, seed = (int(v) for v in sys.argv[3:7])
sys.path.insert(0, root)
import torch
torch.set_num_threads(1)
import posegen
assert posegen.__file__.startswith(root), posegen.__file__
from posegen.samplers import IKSampler
ik = IKSampler.load(ck)
q = ik.robot.manifold.sample_base(targets, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
pos, quat = ik.robot.pose(q)
tg = torch.cat([pos, quat], -1)
ik.sample(tg[:2], 2, seed=0, refine=True)  # warm-up
c, ok = time.thread_time(), 0
for k in range(0, targets, chunk):
    ok += int(ik.sample(tg[k:k + chunk], per, seed=k, refine=True)["success"].sum())
print(json.dumps({"cpu_s": time.thread_time() - c, "exact": ok, "solutions": targets * per}))
"""


def run_tree(root: str, args, chunk: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, root, args.checkpoint, str(chunk), str(args.targets),
                          str(args.per_target), str(args.target_seed)], capture_output=True, text=True, check=True,
                         env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="the other posegen checkout (its repository root)")
    p.add_argument("--after", default=str(REPO))
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--robot", default="panda", help="names the results file (the checkpoint fixes the robot)")
    p.add_argument("--targets", type=int, default=100)
    p.add_argument("--per-target", type=int, default=20)
    p.add_argument("--target-seed", type=int, default=10_000)
    p.add_argument("--chunks", type=lambda s: [int(v) for v in s.split(",")], default=[100, 20])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    res = Result("ik_before_after", vars(args))
    res.extra["commits"] = {label: subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                                                  text=True).stdout.strip() or None
                            for label, root in (("before", args.before), ("after", args.after))}
    for chunk in args.chunks:
        best = {}
        for _ in range(args.repeats):
            for label, root in (("before", args.before), ("after", args.after)):
                r = run_tree(str(Path(root).resolve()), args, chunk)
                ms = 1e3 * r["cpu_s"] / max(r["exact"], 1)
                if ms < best.get(label, {}).get("cpu_ms_per_exact", float("inf")):
                    best[label] = {**r, "cpu_ms_per_exact": ms}
        for label, r in best.items():
            res.add({"tree": label, "chunk": chunk, **r})
        print(chunk, json.dumps(best), flush=True)
    print(f"wrote {res.write(Path(args.out) / f'ik_before_after_{args.robot}.json')}")


if __name__ == "__main__":
    main()
