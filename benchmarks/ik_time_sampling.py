"""Which RFM time sampling a warm restart of the shipped IK weights should use: a short probe.

    # 80 000 steps from the shipped Panda weights with t drawn late (more steps near the data), then uniformly
    OMP_NUM_THREADS=1 python benchmarks/ik_time_sampling.py --robot panda --time-sampling late --run runs/ts_late
    OMP_NUM_THREADS=1 python benchmarks/ik_time_sampling.py --robot panda --time-sampling uniform --run runs/ts_uni
    # a fresh model instead (IKSampler.fit's defaults: lr 3e-3, warm-up 200, seed 0), 20 000 steps
    OMP_NUM_THREADS=1 python benchmarks/ik_time_sampling.py --robot panda --time-sampling late --from-scratch \
        --steps 20000 --lr 3e-3 --warmup 200 --seed 0 --eval-every 20000 --run runs/ts_scratch_late

Each run starts from ``IKSampler.pretrained(robot)`` (the standardisation of its data kept), trains with
posegen's one loop (:meth:`IKSampler.fit`: fresh FK samples, AdamW, warm-up and cosine, EMA; resumable from
``--run``) and every ``--eval-every`` steps, and at the end, writes the raw error of the EMA weights on
``benchmarks/ik_pretrained.py eval``'s 200 held-out targets x 20 (target seed 10 000) at temperature 1 and 0.75
to ``--out`` (JSON lines: step, and per temperature mean / median position error in mm and mean rotation error in
deg). The stage that ships comes from ``configs/pretrained/ik.yaml`` through ``ik_pretrained.py train``; this
probe only chooses its time sampling (results: ``benchmarks/results/ik_time_sampling_panda_{late,uniform}.jsonl``).
With ``--from-scratch`` the run starts from a fresh :class:`IKSampler` (network initialised after
``torch.manual_seed(0)``) instead, as a user's first training does (``ik_time_sampling_{panda,ur5e}_scratch.jsonl``:
what made ``late`` :meth:`IKSampler.fit`'s default).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from ik_pretrained import held_out  # noqa: E402

from posegen.samplers import IKSampler  # noqa: E402


def raw_errors(ik: IKSampler, targets: torch.Tensor, per_target: int, temperatures=(1.0, 0.75)) -> dict:
    """``{"T<t>": [mean mm, median mm, mean deg]}`` of raw draws (``ik.sample``'s default integrator)."""
    out = {}
    for t in temperatures:
        q = ik.sample(targets, per_target, seed=0, temperature=t)["joints"].double()
        pe, re = ik.errors(q, targets)
        out[f"T{t:g}"] = [1e3 * float(pe.mean()), 1e3 * float(pe.median()), float(re.mean().rad2deg())]
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--robot", default="panda")
    p.add_argument("--time-sampling", choices=("uniform", "late"), required=True)
    p.add_argument("--run", required=True, help="checkpoint folder (resumed when it exists)")
    p.add_argument("--out", default=None, help="JSON lines (default RUN/evals.jsonl)")
    p.add_argument("--steps", type=int, default=80_000)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--eval-every", type=int, default=20_000)
    p.add_argument("--per-target", type=int, default=20)
    p.add_argument("--from-scratch", action="store_true", help="train a fresh model instead of the shipped one")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.from_scratch:
        torch.manual_seed(0)  # the network's initialisation
        ik, start = IKSampler(a.robot), 0
    else:
        ik = IKSampler.pretrained(a.robot)
        start = int(ik.training["steps"])
        ik.training = {"steps": start}  # a continued run: the data's standardisation is kept
    targets = held_out(ik.robot)[1]   # ik_pretrained.py eval's 200 targets
    Path(a.run).mkdir(parents=True, exist_ok=True)
    out = Path(a.out) if a.out else Path(a.run) / "evals.jsonl"

    def record(sampler, step) -> None:
        row = {"step": step, "time_sampling": a.time_sampling, "from_scratch": a.from_scratch,
               "when": time.strftime("%Y-%m-%d %H:%M"), **raw_errors(sampler, targets, a.per_target)}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), flush=True)

    def callback(info) -> None:
        if (info["step"] - start) % a.eval_every == 0:
            snap = info["snapshot"]()
            snap.flow.eval()
            record(snap, info["step"] - start)

    ik.fit(steps=a.steps, batch_size=a.batch_size, lr=a.lr, warmup=a.warmup, seed=a.seed, device="cpu",
           time_sampling=a.time_sampling, log_every=math.gcd(500, a.eval_every), out_dir=a.run, resume=True,
           callback=callback)
    ik.flow.eval()
    record(ik, "final")


if __name__ == "__main__":
    main()
