"""Earth-science density estimation on S^2: test NLL per posegen objective, over seeded 80/10/10 splits.

Protocol (Mathieu & Nickel 2020, Chen & Lipman 2024): for each data set and seed 0-4, ``earth_splits``
gives a random 80/10/10 train/val/test split; a model is trained on train, the best EMA weights by
validation NLL are kept (early stopping with ``--patience``), and the mean test NLL is reported (mean
and std over seeds). Lower is better. Each run also records a dopri5 check of the test solver and a Monte
Carlo estimate of the integral of exp(log_prob) (must be 1 within its standard error), on the same points
with each solver of ``--mc-steps`` (the finest is the row's ``normalisation``), so that a reading far from 1
can be told apart from solver error.

    python benchmarks/earth_nll.py --quick --out benchmarks/results/quick/earth_nll.json
    python benchmarks/earth_nll.py --workers 2 --out benchmarks/results/full/earth_nll.json

The settings of ``configs/earth_*.yaml`` (RFM, 256 x 5, Fourier features of x, times drawn late), one process::

    python benchmarks/earth_nll.py --objectives rfm --seeds 0 --steps 20000 --hidden 256 --depth 5 \\
        --val-every 2000 --patience 0 --fourier 6 --time-sampling late --eval-steps 256 \\
        --out benchmarks/results/full/earth_nll_fourier.json

Seed 1 was added to that file with ``--seeds 0,1 --resume --mc-steps 16,256 --save-models runs/earth_models``
(the check settings may differ between sessions: each row records its own).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, add_run_args, csv_list, resolve_args, run_jobs, set_threads  # noqa: E402

OBJECTIVES = ("cnfm", "rfm", "moser", "interpolant")
DATASETS = ("volcano", "earthquake", "flood", "fire")
TIME_SAMPLINGS = ("uniform", "late")

# Published test NLL on the four earth sets (volcano, earthquake, flood, fire), mean over 5 seeds.
PUBLISHED = {
    "Moser Flow (Rozen et al. 2021)": {"volcano": -2.02, "earthquake": -0.09, "flood": 0.62, "fire": -1.03},
    "CNFM (Ben-Hamu et al. 2022)": {"volcano": -2.38, "earthquake": -0.38, "flood": 0.25, "fire": -1.40},
    "RFM (Chen & Lipman 2024)": {"volcano": -7.93, "earthquake": -0.28, "flood": 0.42, "fire": -1.86},
}

QUICK = dict(datasets="volcano", objectives=",".join(OBJECTIVES), seeds="0,1", steps=150, batch_size=256,
             hidden=64, depth=3, val_every=50, patience=0, val_steps=4, eval_steps=8, mc_points=256,
             mc_steps=8, check_points=16, cnfm_max_components=256)
# The full protocol leaves out "interpolant": on S2 it is RFM exactly (same geodesic path and draws; the
# losses differ by |dx_t|^2, which has no parameters), as the quick run verifies to 1e-8.
FULL = dict(datasets=",".join(DATASETS), objectives="cnfm,rfm,moser", seeds="0,1,2,3,4", steps=1500,
            batch_size=256, hidden=128, depth=4, val_every=250, patience=3, val_steps=8, eval_steps=32,
            mc_points=1024, mc_steps=16, check_points=64, cnfm_max_components=1024)
# model and time options, the same in both modes: plain S2 (the network sees x) and uniform times
MODEL = dict(fourier=0, time_sampling="uniform", weight_decay=0.0, ema_decay=0.999)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny CI setting (defaults below become QUICK's)")
    p.add_argument("--datasets", help=f"comma list from {DATASETS}")
    p.add_argument("--objectives", help=f"comma list from {OBJECTIVES}")
    p.add_argument("--seeds", help="comma list of split/training seeds (literature: 0,1,2,3,4)")
    p.add_argument("--steps", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--hidden", type=int)
    p.add_argument("--depth", type=int)
    p.add_argument("--val-every", type=int)
    p.add_argument("--patience", type=int, help="validations without improvement before stopping (0: never)")
    p.add_argument("--val-steps", type=int, help="rk4 steps of the validation NLL")
    p.add_argument("--eval-steps", type=int, help="rk4 steps of the test NLL and MC check")
    p.add_argument("--mc-points", type=int, help="points per Monte Carlo normalisation estimator (0: skip)")
    p.add_argument("--mc-steps", help="rk4 steps of the Monte Carlo check's log_prob, a comma list (e.g. 16,256): "
                                      "the same points scored with each")
    p.add_argument("--check-points", type=int, help="test points re-scored with dopri5")
    p.add_argument("--cnfm-max-components", type=int, help="CNFM mixture components per step (0: all)")
    p.add_argument("--fourier", type=int, default=MODEL["fourier"],
                   help="octaves of Fourier features of x (the flow is on S2[fourier=K]; 0: x only)")
    p.add_argument("--time-sampling", choices=TIME_SAMPLINGS, default=MODEL["time_sampling"],
                   help="training times of RFM and the interpolant: uniform, or late, t = 1 - (1 - u)^2")
    p.add_argument("--weight-decay", type=float, default=MODEL["weight_decay"], help="AdamW's decoupled weight decay")
    p.add_argument("--ema-decay", type=float, default=MODEL["ema_decay"],
                   help="decay of the weights' moving average that is validated and evaluated")
    p.add_argument("--save-models", type=Path, default=None,
                   help="folder for the trained flows (DATASET_OBJECTIVE_seedS.pt), to re-check them later")
    add_run_args(p, "benchmarks/results/earth_nll.json")
    args = resolve_args(p, p.parse_args(argv), QUICK, FULL, {"datasets": DATASETS, "objectives": OBJECTIVES})
    args.mc_steps = sorted(set(csv_list(args.mc_steps, int)))
    if not args.mc_steps or min(args.mc_steps) < 1:
        p.error(f"--mc-steps must be positive integers, got {args.mc_steps}")
    if args.fourier < 0:
        p.error(f"--fourier must be >= 0, got {args.fourier}")
    if args.time_sampling != "uniform" and not set(args.objectives) <= {"rfm", "interpolant"}:
        p.error(f"--time-sampling {args.time_sampling} applies to rfm and interpolant, not to "
                f"{', '.join(o for o in args.objectives if o not in ('rfm', 'interpolant'))}")
    return args


class EarthResult(Result):
    """A resumed file may mix check settings (Monte Carlo points and solvers, dopri5 points, where models are
    saved): each row records its own, and they change no NLL."""

    RESUMABLE = Result.RESUMABLE | {"mc_steps", "mc_points", "check_points", "save_models"}


def model_manifold(fourier: int) -> str:
    """The flow's manifold spec: S2, with ``fourier`` octaves of features of x when > 0 (same points)."""
    return f"S2[fourier={fourier}]" if fourier else "S2"


def objective_options(objective: str, args) -> dict:
    out = {}
    if objective == "cnfm" and args.cnfm_max_components:
        out["max_components"] = int(args.cnfm_max_components)
    if args.time_sampling != "uniform":
        out["time_sampling"] = args.time_sampling
    return out


def run_one(job):
    """One (data set, objective, seed) run; executed in a worker process when --workers > 1."""
    from posegen.data import earth_splits

    from evaluate import fit_and_evaluate, mc_normalisation

    dataset, objective, seed, a = job
    set_threads(a["threads"])
    train, val, test = earth_splits(dataset, seed)
    finest = {"method": "rk4", "steps": max(a["mc_steps"])}
    row, flow = fit_and_evaluate(
        model_manifold(a["fourier"]), train, val, test.points, objective, seed=seed, steps=a["steps"], batch_size=a["batch_size"],
        hidden=a["hidden"], depth=a["depth"], lr=a["lr"], val_every=a["val_every"], patience=a["patience"],
        val_solver={"method": "rk4", "steps": a["val_steps"]},
        test_solver={"method": "rk4", "steps": a["eval_steps"]},
        objective_options=a["objective_options"][objective], check_points=a["check_points"],
        mc_points=a["mc_points"], mc_solver=finest,
        train_options={"weight_decay": a["weight_decay"], "ema_decay": a["ema_decay"]})
    row["dataset"] = dataset
    if a["mc_points"] and len(a["mc_steps"]) > 1:
        # the same points (seeded by the split seed) with each coarser solver
        row["normalisation_by_solver"] = [row["normalisation"]]
        for steps in sorted(a["mc_steps"], reverse=True)[1:]:
            solver = {"method": "rk4", "steps": steps}
            mc = mc_normalisation(flow, a["mc_points"], train.points, solver, seed=seed)
            row["normalisation_by_solver"].append({**mc, "solver": solver})
    if a["save_models"]:
        path = Path(a["save_models"]) / f"{dataset}_{objective}_seed{seed}.pt"
        flow.save(path, extra={"benchmark": "earth_nll", "dataset": dataset, "seed": seed})
        row["model_path"] = str(path)
    return row


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    settings["objective_options"] = {o: objective_options(o, args) for o in args.objectives}
    res = EarthResult("earth_nll", settings)
    res.extra["published"] = PUBLISHED
    done = res.resume_from(args.out, lambda r: (r["dataset"], r["objective"], r["seed"])) if args.resume else {}
    jobs = []
    for d in args.datasets:
        for o in args.objectives:
            for s in args.seeds:
                if (d, o, s) in done:
                    res.add(done[(d, o, s)])
                else:
                    jobs.append((d, o, s, settings))

    def on_result(job, row):
        res.add(row)
        res.write(args.out)
        t = row["test"]
        print(f"{row['dataset']:>10} {row['objective']:>11} seed {row['seed']}: test NLL {t['nll']:.3f} "
              f"(best step {row['best_step']}, {row['total_seconds']:.0f} s)", flush=True)

    run_jobs(run_one, jobs, workers=args.workers, threads=args.threads, on_result=on_result)
    path = res.write(args.out)
    print(f"wrote {path} ({res.payload()['duration_s']:.0f} s)")
    return path


if __name__ == "__main__":
    main()
