"""Torch CPU threads for posegen's workloads: one thread against torch's default (all cores) and a cap, for
training (the demo's model), sampling and refined IK, each in a fresh process, wall and CPU time.

    python benchmarks/threads.py --out benchmarks/results/full/threads.json [--threads 1,2,0] [--repeat 3]

``0`` stands for torch's default (as many threads as cores). Run it on a quiet machine and again with other
work running (``--label busy``): the CLI's default (:func:`posegen.cli.options.default_threads`) is chosen
from both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posegen.atomic import atomic_open  # noqa: E402


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as fh:
        fh.write(text)

WORKLOADS = {
    "train": """
import torch, posegen as pg
from posegen import robots
panda = robots.load("panda")
ds = pg.data.load_robomimic("data/panda_reach_grasp.hdf5", keys={"robot0_joint_pos": "I7"}, robot=panda, mask="train")
torch.manual_seed(0)
flow = pg.PoseFlow(panda.manifold, hidden=256, depth=3, robot=panda)
import warnings; warnings.simplefilter("ignore")
t0 = time.perf_counter(); c0 = time.process_time()
pg.train(flow, ds, "rfm", steps=200, batch_size=256, progress=False, val_every=0)
""",
    "sample": """
import torch, posegen as pg
from posegen import robots
panda = robots.load("panda")
torch.manual_seed(0)
flow = pg.PoseFlow(panda.manifold, hidden=256, depth=3, robot=panda)
t0 = time.perf_counter(); c0 = time.process_time()
for s in range(3):
    flow.sample(2000, seed=s)
""",
    "ik": """
import torch, posegen as pg
ik = pg.IKSampler.pretrained("panda")
q = ik.robot.manifold.sample_base(50, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
T = ik.robot.fk(q)
targets = torch.cat(pg.rotations.pos_quat_from_se3(T, "xyzw"), -1)
t0 = time.perf_counter(); c0 = time.process_time()
ik.sample(targets, 20, seed=0, refine=True)
""",
}


def run_one(workload: str, threads: int) -> dict:
    setup = "import time, torch\n" + (f"torch.set_num_threads({threads})\n" if threads else "")
    code = setup + WORKLOADS[workload] + "\nprint(time.perf_counter() - t0, time.process_time() - c0, torch.get_num_threads())\n"
    env = dict(os.environ)
    for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(k, None)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    wall, cpu, n = out.stdout.split()[-3:]
    return {"wall_s": float(wall), "cpu_s": float(cpu), "threads": int(n)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", default="1,2,0", help="thread counts to compare (0: torch's default)")
    p.add_argument("--workloads", default=",".join(WORKLOADS))
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--label", default="quiet", help="what else ran on the machine")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    rows = []
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for w in args.workloads.split(","):
        for r in range(args.repeat):
            for t in (int(x) for x in args.threads.split(",")):   # interleaved: load changes hit every setting
                row = {"workload": w, "asked": t, "repeat": r, "loadavg": os.getloadavg()[0], **run_one(w, t)}
                rows.append(row)
                print(json.dumps(row), flush=True)
                result = {"machine": {"cores": os.cpu_count(), "label": args.label}, "rows": rows,
                          "when": time.strftime("%Y-%m-%d %H:%M:%S")}
                atomic_write_text(Path(args.out), json.dumps(result, indent=1))  # a partial run keeps its rows


if __name__ == "__main__":
    main()
