"""Is a Monte Carlo normalisation estimate off because of the model or because of the solver?

A CNF's density integrates to 1 exactly when its ODE is solved exactly, so a normalisation estimate
(``evaluate.mc_normalisation``) that is many standard errors from 1 points at the solver used to score the
sampled points. This trains one earth model (same settings and seed as the larger-budget run) and repeats
the estimate, on the same random points, with several solvers.

    python benchmarks/mc_solver_check.py --dataset volcano --seed 0 \\
        --out benchmarks/results/full/mc_solver_check.json     # ~6 min on one core
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, csv_list, set_threads  # noqa: E402


def parse_solver(text: str) -> dict:
    """``"rk4:16"`` -> ``{"method": "rk4", "steps": 16}``; ``"dopri5"`` -> adaptive, tolerance 1e-6."""
    method, _, steps = text.partition(":")
    if method == "dopri5":
        return {"method": "dopri5", "atol": 1e-6, "rtol": 1e-6}
    return {"method": method, "steps": int(steps or 16)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="volcano")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--depth", type=int, default=5)
    p.add_argument("--val-every", type=int, default=2000)
    p.add_argument("--mc-points", type=int, default=1024)
    p.add_argument("--solvers", default="rk4:16,rk4:64,rk4:256,dopri5")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/mc_solver_check.json"))
    args = p.parse_args(argv)
    set_threads(args.threads)
    from posegen.data import earth_splits

    from evaluate import fit_and_evaluate, mc_normalisation

    res = Result("mc_solver_check", {k: v for k, v in vars(args).items() if k != "out"})
    train, val, test = earth_splits(args.dataset, args.seed)
    row, flow = fit_and_evaluate(
        "S2", train, val, test.points, "rfm", seed=args.seed, steps=args.steps, batch_size=256,
        hidden=args.hidden, depth=args.depth, lr=2e-3, val_every=args.val_every, patience=0,
        val_solver={"method": "rk4", "steps": 8}, test_solver={"method": "rk4", "steps": 64},
        check_points=0, mc_points=0)
    print(f"{args.dataset} seed {args.seed}: test NLL {row['test']['nll']:.3f}", flush=True)
    for text in csv_list(args.solvers):
        solver = parse_solver(text)
        mc = mc_normalisation(flow, args.mc_points, train.points, solver, seed=args.seed)
        res.add({"dataset": args.dataset, "seed": args.seed, "test_nll": row["test"]["nll"], "solver": solver,
                 "normalisation": mc})
        res.write(args.out)
        print(f"  {text:>8}: uniform {mc['base']['estimate']:.3f} (z {mc['base']['z_score']:.1f}), defensive "
              f"{mc['defensive']['estimate']:.3f} (z {mc['defensive']['z_score']:.1f}), {mc['seconds']:.0f} s",
              flush=True)
    print(f"wrote {res.write(args.out)}")


if __name__ == "__main__":
    main()
