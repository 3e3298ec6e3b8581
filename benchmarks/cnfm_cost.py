"""What a CNFM training step costs against an RFM step on S2 (fire data), at the same width and batch.

Times one full optimiser step (loss, backward, AdamW, EMA-free) per objective, plus the pieces of a CNFM
step: the mixture-path targets (``MixturePath.log_prob_dt_grad``), the velocity with its exact divergence
(forward + backward), the kernel draw. Medians of repeated calls after a warm-up, one torch thread. The RFM
and CNFM steps are timed in turns (one of each per round), in wall time and in this thread's CPU time
(``*_cpu_ms``): on a machine shared with other jobs the wall times swing ~2x with the load, the CPU times
much less, so ``ratio_cpu`` is the figure to compare across runs; ``ratio_cpu_min`` (fastest CNFM step over
fastest RFM step) moves least with the load.

    python benchmarks/cnfm_cost.py --hidden 64,256 --out benchmarks/results/cnfm_cost.json
    python benchmarks/cnfm_cost.py --hidden 256 --max-components 0,1024   # all kernels, then 1024-subsets
    python benchmarks/cnfm_cost.py --quick      # seconds: tiny sizes (CI)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, csv_list, set_threads, timeit  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--hidden", default="64,256")
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--compile", action="store_true", help="also time compile=True steps")
    p.add_argument("--max-components", default="0",
                   help="CNFM mixture components per step, a comma list (0: all of them, the default)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)
    if a.quick:
        a.hidden, a.depth, a.batch_size, a.repeat = "16", 2, 32, 2
    a.hidden = csv_list(a.hidden, int)
    a.max_components = csv_list(a.max_components, int)
    if min(a.max_components) < 0:
        p.error(f"--max-components must be >= 0, got {a.max_components}")
    return a


def step_fn(flow, objective, z, batch_size, gen_seed=0):
    import posegen as pg  # noqa: F401

    opt = torch.optim.AdamW(flow.parameters(), lr=1e-4)
    gen = torch.Generator(device=z.device)
    state = {"step": 0}

    def step():
        gen.manual_seed(gen_seed + state["step"])
        state["step"] += 1
        idx = torch.randint(z.shape[0], (batch_size,), generator=gen, device=z.device)
        loss = objective.loss(flow, z[idx], None, generator=gen, index=idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def time_turns(fns, repeat, warmup=2):
    """``{name: (median wall s, median thread CPU s, min thread CPU s)}`` of the callables in ``fns``,
    called in turns."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            w, c = time.perf_counter(), time.thread_time()
            f()
            cpu[k].append(time.thread_time() - c)
            wall[k].append(time.perf_counter() - w)
    med = lambda v: sorted(v)[len(v) // 2]  # noqa: E731
    return {k: (med(wall[k]), med(cpu[k]), min(cpu[k])) for k in fns}


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    import posegen as pg
    from posegen.objectives import make_objective

    train, _, _ = pg.data.earth_splits("fire", 0)
    if args.quick:
        train = train.points[:200]
    pts = train.points if hasattr(train, "points") else train
    res = Result("cnfm_cost", vars(args))
    for hidden, max_components in [(h, m) for h in args.hidden for m in args.max_components]:
        cnfm_options = {"max_components": max_components} if max_components else {}
        torch.manual_seed(0)
        flow = pg.PoseFlow("S2", hidden=hidden, depth=args.depth)
        z = flow.to_internal(pts.to(torch.float32))
        row = {"hidden": hidden, "depth": args.depth, "batch_size": args.batch_size, "n_components": z.shape[0],
               "max_components": max_components or None}
        steps = {}
        for name in ("rfm", "cnfm"):
            obj = make_objective(name, **(cnfm_options if name == "cnfm" else {}))
            obj.setup(flow, z)
            steps[name] = step_fn(flow, obj, z, args.batch_size)
        for name, (wall, cpu, cpu_min) in time_turns(steps, args.repeat).items():
            row[f"{name}_step_ms"], row[f"{name}_step_cpu_ms"] = 1e3 * wall, 1e3 * cpu
            row[f"{name}_step_cpu_min_ms"] = 1e3 * cpu_min
        # pieces of a CNFM step with the whole mixture (a subset changes only the targets' share)
        if not max_components:
            obj = make_objective("cnfm")
            obj.setup(flow, z)
            gen = torch.Generator().manual_seed(0)
            x1 = z[: args.batch_size]
            t_, xt, _ = obj._draw(x1, None, gen, None)
            row["targets_ms"] = 1e3 * timeit(lambda: obj.path.log_prob_dt_grad(xt, t_), repeat=args.repeat)["median_s"]
            row["targets_cpu_ms"] = 1e3 * time_turns({"t": lambda: obj.path.log_prob_dt_grad(xt, t_)}, args.repeat)["t"][1]
            row["draw_ms"] = 1e3 * timeit(lambda: obj._draw(x1, None, gen, None), repeat=args.repeat)["median_s"]

            def vdiv():
                v, d = flow.velocity_and_div(t_, xt)
                (v.sum() + d.sum()).backward()

            def vel():
                flow.velocity(t_, xt).sum().backward()

            row["velocity_ms"] = 1e3 * timeit(vel, repeat=args.repeat)["median_s"]
            row["velocity_div_ms"] = 1e3 * timeit(vdiv, repeat=args.repeat)["median_s"]
            row["velocity_div_cpu_ms"] = 1e3 * time_turns({"v": vdiv}, args.repeat)["v"][1]
        row["ratio"] = row["cnfm_step_ms"] / row["rfm_step_ms"]
        row["ratio_cpu"] = row["cnfm_step_cpu_ms"] / row["rfm_step_cpu_ms"]
        row["ratio_cpu_min"] = row["cnfm_step_cpu_min_ms"] / row["rfm_step_cpu_min_ms"]
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        res.add(row)
    if args.out is not None:
        res.write(args.out)
    return res


if __name__ == "__main__":
    main()
