"""One short run that records posegen's figures on whatever device it finds (a GPU when one is lent).

Sections, in order (each row names the device):

* ``train``: training steps/s of RFM and CNFM at batch 4096 and 65536 on S2 (fire data) and on the
  Panda joint configuration (``posegen.robots.load("panda").manifold``, data/panda_reach_grasp.hdf5);
* ``sample`` / ``log_prob``: poses/s of ``PoseFlow.sample`` and points/s of the exact ``log_prob`` at NFE 32
  (rk4, 8 steps) on both manifolds;
* ``fire_nll``: test NLL on fire (seed-0 split) after ``--fire-minutes`` of RFM training at the published
  model size (512 x 6), through ``train(max_minutes=...)``;
* ``gpu_tests``: ``pytest -m gpu`` (pass/fail counts; skipped without CUDA).

Under 8 minutes on a GPU with the defaults (the fire run is 3 minutes of it). JSON written atomically
(``posegen.atomic`` via ``common.Result``).

    python benchmarks/gpu.py --out benchmarks/results/gpu.json
    python benchmarks/gpu.py --quick --out /tmp/gpu.json      # tiny sizes, seconds, on a CPU
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, csv_list, timeit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FULL = dict(batches="4096,65536", hidden=256, depth=5, repeat=5, n_sample=65536, n_logp=16384,
            fire_minutes=3.0, fire_hidden=512, fire_depth=6, fire_batch=4096, tests=True)
QUICK = dict(batches="64", hidden=16, depth=2, repeat=1, n_sample=64, n_logp=32, fire_minutes=0.03,
             fire_hidden=16, fire_depth=2, fire_batch=64, tests=False)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    for name, typ in (("batches", str), ("hidden", int), ("depth", int), ("repeat", int), ("n-sample", int),
                      ("n-logp", int), ("fire-minutes", float), ("fire-hidden", int), ("fire-depth", int),
                      ("fire-batch", int)):
        p.add_argument("--" + name, type=typ)
    p.add_argument("--tests", dest="tests", action="store_true", default=None)
    p.add_argument("--no-tests", dest="tests", action="store_false")
    p.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "gpu.json")
    a = p.parse_args(argv)
    for k, v in (QUICK if a.quick else FULL).items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    a.batches = csv_list(a.batches, int)
    return a


def _sync(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _data(quick):
    import posegen as pg
    import posegen.robots
    from posegen.data import load_robomimic

    fire = pg.data.earth_splits("fire", 0)
    robot = posegen.robots.load("panda")
    panda = load_robomimic(REPO / "data" / "panda_reach_grasp.hdf5", {"robot0_joint_pos": "I7"}, robot=robot)
    return {"S2": (pg.manifolds.parse("S2"), fire[0].points, None),
            "panda joints": (robot.manifold, panda.points, robot)}, fire


def markdown_section(d, path: str) -> str:
    """The RESULTS.md table of a results file of this script (called by make_results.py)."""
    m, a = d.get("machine", {}), d.get("args", {})
    device = d.get("device") or {}
    dev = device.get("name", "?") if isinstance(device, dict) else str(device)
    cpu_note = ("" if isinstance(device, dict) and device.get("type") == "cuda" else
                " No GPU has been lent to this project: these are the script's CPU figures (one thread), the "
                "baseline a GPU run of the same command will be compared with.")
    lines = [f"## Device throughput (`benchmarks/gpu.py`) on {dev}", "",
             f"`{path}`; {m.get('cpu', '?')}, torch {m.get('torch', '?')}, commit {str(m.get('commit'))[:10]}"
             f"{' (uncommitted changes)' if m.get('dirty') else ''}, {d.get('duration_s', 0) / 60:.1f} min in all."
             + cpu_note, "",
             "| section | manifold | objective | batch / n | width x depth | throughput |", "|---|---|---|---|---|---|"]
    for r in d["results"]:
        if r["section"] == "train":
            lines.append(f"| train | {r['manifold']} | {r['objective']} | {r['batch_size']} | {r['hidden']} x {r['depth']} "
                         f"| {r['steps_per_s']:.1f} steps/s ({r['points_per_s']:.0f} points/s) |")
        elif r["section"] in ("sample", "log_prob"):
            what = "poses/s" if r["section"] == "sample" else "points/s (exact likelihood)"
            val = r.get("poses_per_s", r.get("points_per_s"))
            lines.append(f"| {r['section']} (NFE {r['nfe']}) | {r['manifold']} | | {r['n']} | {a.get('hidden', '')} x "
                         f"{a.get('depth', '')} | {val:.0f} {what} |")
        elif r["section"] == "fire_nll":
            lines.append(f"| fire test NLL after {r['max_minutes']:g} min ({r['steps_done']} steps) | S2 | {r['objective']} "
                         f"| {r['batch_size']} | {r['hidden']} x {r['depth']} | {r['test_nll']:.3f} nats ({r['eval']}) |")
        elif r["section"] == "tests":
            lines.append(f"| pytest -m gpu | | | | | {r.get('summary', r)} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    import posegen as pg
    from posegen.objectives import make_objective

    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    res = Result("gpu", {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()})
    res.extra["device"] = {"type": dev.type, "name": name, "torch": torch.__version__,
                           "cuda": torch.version.cuda if dev.type == "cuda" else None}
    print(f"device: {dev} ({name})", flush=True)
    sets, fire = _data(args.quick)

    for label, (M, pts, robot) in sets.items():
        torch.manual_seed(0)
        flow = pg.PoseFlow(M, hidden=args.hidden, depth=args.depth, robot=robot).to(dev)
        flow.fit_standardization(pts.to(dev))
        z = flow.to_internal(pts.to(dev, flow.dtype))
        opt = torch.optim.AdamW(flow.parameters(), lr=1e-4)
        gen = torch.Generator(device=dev).manual_seed(0)
        for objective in ("rfm", "cnfm"):
            obj = make_objective(objective, **({"max_components": 4096} if objective == "cnfm" else {}))
            obj.setup(flow, z)
            for B in args.batches:
                def step():
                    idx = torch.randint(z.shape[0], (B,), generator=gen, device=dev)
                    loss = obj.loss(flow, z[idx], None, generator=gen, index=idx)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    _sync(dev)

                row = {"section": "train", "device": name, "manifold": label, "objective": objective,
                       "batch_size": B, "hidden": args.hidden, "depth": args.depth}
                try:
                    t = timeit(step, repeat=args.repeat, warmup=1)
                    row.update(steps_per_s=1 / t["median_s"], points_per_s=B / t["median_s"])
                except torch.cuda.OutOfMemoryError as e:  # pragma: no cover - GPU only
                    row["error"] = f"out of memory: {str(e).splitlines()[0]}"
                    torch.cuda.empty_cache()
                print(row, flush=True)
                res.add(row)
        flow.eval()
        s = {"method": "rk4", "steps": 8}  # NFE 32
        t = timeit(lambda: (flow.sample(args.n_sample, seed=0, chunk_size=None, **s), _sync(dev)),
                   repeat=max(1, args.repeat // 2))
        res.add({"section": "sample", "device": name, "manifold": label, "nfe": 32, "n": args.n_sample,
                 "poses_per_s": args.n_sample / t["median_s"]})
        x = flow.sample(args.n_logp, seed=1, chunk_size=None, **s)
        t = timeit(lambda: (flow.log_prob(x, chunk_size=None, **s), _sync(dev)), repeat=max(1, args.repeat // 2))
        res.add({"section": "log_prob", "device": name, "manifold": label, "nfe": 32, "n": args.n_logp,
                 "points_per_s": args.n_logp / t["median_s"]})
        print(res.rows[-2:], flush=True)
        res.write(args.out)

    # fire NLL after a fixed training time at the published model size
    train, val, test = fire
    flow = pg.PoseFlow("S2", hidden=args.fire_hidden, depth=args.fire_depth)
    t0 = time.perf_counter()
    out = pg.train(flow, train, "rfm", val_data=val, steps=10 ** 7, batch_size=args.fire_batch,
                   max_minutes=args.fire_minutes, val_every=10 ** 7, log_every=10 ** 7, checkpoint_every=10 ** 7,
                   device=str(dev), progress=False, lr=1e-3, val_points=1024)
    train_s = time.perf_counter() - t0
    nll = float(-out.flow.log_prob(test.points.to(dev), method="rk4", steps=64).mean())
    row = {"section": "fire_nll", "device": name, "objective": "rfm", "hidden": args.fire_hidden,
           "depth": args.fire_depth, "batch_size": args.fire_batch, "max_minutes": args.fire_minutes,
           "steps_done": out.steps_done, "train_s": train_s, "test_nll": nll, "eval": "rk4, 64 steps"}
    print(row, flush=True)
    res.add(row)
    res.write(args.out)

    if args.tests:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-m", "gpu", "tests"],
                              cwd=REPO, capture_output=True, text=True)
        tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|deselected)", tail)}
        res.add({"section": "gpu_tests", "device": name, "returncode": proc.returncode, "summary": tail,
                 "seconds": time.perf_counter() - t0, **counts})
        print(tail, flush=True)
        res.write(args.out)
    return res


if __name__ == "__main__":
    main()
