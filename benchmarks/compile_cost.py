"""Does ``torch.compile`` of the velocity network pay? One RFM training step, eager against compiled.

    OMP_NUM_THREADS=1 python benchmarks/compile_cost.py --out benchmarks/results/full/compile_cost.json
    python benchmarks/compile_cost.py --device cuda --batch 4096 --out benchmarks/results/full/compile_cost_gpu.json

For each manifold (S2, the Panda's joint box I7), width and batch: the compile time (the first steps, which
trace and build the kernels) and the per-step time after warm-up, median of ``--repeat`` blocks of ``--steps``
steps, in this thread's CPU time and in wall time. Eager and compiled steps alternate block by block, so a
change of the machine's load hits both. ``train.compile: true`` (``TrainConfig.compile``) is what is measured:
``torch.compile(flow.net.forward)``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Result, set_threads  # noqa: E402

from posegen import PoseFlow  # noqa: E402
from posegen.objectives import make_objective  # noqa: E402

PANDA = "I7[-2.8973:2.8973,-1.7628:1.7628,-2.8973:2.8973,-3.0718:-0.0698,-2.8973:2.8973,-0.0175:3.7525,-2.8973:2.8973]"
MANIFOLDS = {"S2": "S2", "panda_joints": PANDA}


def measure(spec: str, hidden: int, depth: int, batch: int, steps: int, repeat: int, seed: int = 0,
            device: str = "cpu"):
    torch.manual_seed(seed)
    flows = {"eager": PoseFlow(spec, hidden=hidden, depth=depth)}
    flows["compiled"] = PoseFlow(spec, hidden=hidden, depth=depth)
    flows["compiled"].load_state_dict(flows["eager"].state_dict())
    flows = {k: f.to(device) for k, f in flows.items()}
    data = flows["eager"].manifold.sample_base(8192, generator=torch.Generator().manual_seed(seed)).to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    out = {}
    steppers = {}
    for mode, flow in flows.items():
        obj = make_objective("rfm")
        obj.setup(flow, flow.to_internal(data))
        opt = torch.optim.Adam(flow.parameters(), 1e-3)
        g = torch.Generator().manual_seed(seed + 1)

        def step(flow=flow, obj=obj, opt=opt, g=g):
            idx = torch.randint(data.shape[0], (batch,), generator=g).to(device)
            loss = obj.loss(flow, flow.to_internal(data[idx]), None, generator=g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        if mode == "compiled":
            flow.net.forward = torch.compile(flow.net.forward)
        t0 = time.perf_counter()
        for _ in range(3):  # the compiled forward traces and builds here
            step()
        sync()
        out[mode] = {"warmup_s": time.perf_counter() - t0, "cpu_ms": [], "wall_ms": []}
        steppers[mode] = step
    for _ in range(repeat):
        for mode, step in steppers.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(steps):
                step()
            sync()
            out[mode]["wall_ms"].append((time.perf_counter() - t0) / steps * 1e3)
            out[mode]["cpu_ms"].append((time.thread_time() - c0) / steps * 1e3)
    for mode in out:
        for k in ("cpu_ms", "wall_ms"):
            v = sorted(out[mode][k])
            out[mode][k] = v[len(v) // 2]
    out["speedup_cpu"] = out["eager"]["cpu_ms"] / out["compiled"]["cpu_ms"]
    out["speedup_wall"] = out["eager"]["wall_ms"] / out["compiled"]["wall_ms"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifolds", default="S2,panda_joints")
    p.add_argument("--hidden", type=lambda s: [int(v) for v in s.split(",")], default=[64, 256])
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda (on a GPU, compare the wall times)")
    p.add_argument("--out", default="benchmarks/results/full/compile_cost.json")
    args = p.parse_args(argv)
    set_threads(args.threads)
    res = Result("compile_cost", vars(args))
    for name in args.manifolds.split(","):
        for h in args.hidden:
            r = measure(MANIFOLDS[name], h, args.depth, args.batch, args.steps, args.repeat, device=args.device)
            row = {"manifold": name, "hidden": h, "depth": args.depth, "batch": args.batch, **r}
            print(name, h, f"eager {r['eager']['cpu_ms']:.2f} ms, compiled {r['compiled']['cpu_ms']:.2f} ms CPU "
                  f"(x{r['speedup_cpu']:.2f}); compile {r['compiled']['warmup_s']:.0f} s", flush=True)
            res.add(row)
    print(f"wrote {res.write(Path(args.out))}")


def markdown_section(d, path: str) -> str:
    """``make_results.py``'s hook: the RESULTS.md section of this script's results."""
    m, a = d["machine"], d["args"]
    load = "/".join(f"{v:.1f}" for v in (m.get("load_avg_1_5_15") or []))
    lines = ["## torch.compile of the velocity network (`benchmarks/compile_cost.py`)", "",
             f"*Source: `{path}`; machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch thread, "
             f"load average at start {load}, GPU: {m.get('cuda') or 'none'}; torch {m['torch']}; commit "
             f"{(m['commit'] or '?')[:10]}{' (+ uncommitted changes)' if m.get('dirty') else ''}.*", "",
             f"One RFM step (Adam), batch {a['batch']}, depth {a['depth']}; median of {a['repeat']} blocks of "
             f"{a['steps']} steps, eager and compiled blocks alternating.", "",
             "| manifold | width | eager step CPU / wall (ms) | compiled step CPU / wall (ms) | speed-up CPU / wall "
             "| compile time (s) |", "|---|---|---|---|---|---|"]
    for r in d["results"]:
        e, c = r["eager"], r["compiled"]
        lines.append(f"| {r['manifold']} | {r['hidden']} | {e['cpu_ms']:.2f} / {e['wall_ms']:.2f} | "
                     f"{c['cpu_ms']:.2f} / {c['wall_ms']:.2f} | {r['speedup_cpu']:.2f}x / {r['speedup_wall']:.2f}x | "
                     f"{c['warmup_s']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
