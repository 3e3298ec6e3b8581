"""Fire (S2) test NLL against minutes of training on one core: posegen under a time budget, and optionally the
flow_matching baseline (``fire_baseline.py``) trained beside it in the same run.

Protocol: the literature's fire split (``posegen.data.earth_splits("fire", seed)``, 80/10/10, seed 0). One
model is trained with ``train.max_minutes`` = ``--minutes`` (the cosine schedule follows the clock); at each
of ``--checkpoints`` minutes of training the EMA weights are scored on the whole test set (exact divergence,
rk4 with ``--eval-steps`` steps). Evaluation time is taken off the training clock, so a checkpoint at 4
minutes means 4 minutes of training. No validation runs during training (the EMA model at a checkpoint is
the model); the last checkpoint's model is also scored with dopri5 (atol = rtol = 1e-6) on the first
``--check-points`` test points, the error of the fixed-step solver.

Clock: ``--clock cpu`` (default) counts the process's CPU time (one torch thread: the compute the run got),
which is what "minutes on one core" means on a shared machine; ``--clock wall`` counts wall time (what
``train.max_minutes`` counts). Both are recorded at every checkpoint.

    python benchmarks/fire_budget.py --quick --out /tmp/fire_budget.json
    python benchmarks/fire_budget.py --minutes 4 --checkpoints 1,2,4 --label "config" \\
        --append --out benchmarks/results/full/fire_budget_ablation.json
    python benchmarks/fire_budget.py --minutes 20 --checkpoints 1,2,4,8,16,20 --baseline \\
        --out benchmarks/results/full/fire_budget.json
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from budget_clock import Clock, checkpoint_hook, score, solver_check  # noqa: E402
from common import Result, csv_list, read_json, set_threads  # noqa: E402

PUBLISHED = {"RFM (Chen & Lipman 2024)": -1.86, "CNFM (Ben-Hamu et al. 2022)": -1.40,
             "Moser Flow (Rozen et al. 2021)": -1.03}
MACHINE_NOTE = "2-core AMD EPYC CPU (shared), one thread, no GPU"

# configs/earth_fire.yaml before this benchmark (RFM, 256 x 5, batch 256, lr 2e-3, EMA 0.999)
DEFAULTS = dict(minutes=4.0, checkpoints="1,2,4", hidden=256, depth=5, batch_size=256, lr=2e-3, warmup=100,
                lr_schedule="cosine", ema_decay=0.999, fourier=0, time_sampling="uniform", weight_decay=0.0,
                eval_steps=256, check_points=64, eval_points=0, seed=0, coupling="independent", objective="rfm",
                objective_options="{}")
# eval_steps: the fire models with Fourier features and late times have a field that is sharp near t = 1;
# after 20 minutes their rk4 NLL on 64 test points was 0.34 (64 steps), 0.15 (128) and 0.09 (256) below
# dopri5 at 1e-6 (benchmarks/results/full/fire_budget.json): 256 steps is the least biased cheap choice,
# and every row carries that ladder
QUICK = dict(minutes=0.04, checkpoints="0.02,0.04", hidden=32, depth=2, batch_size=64, eval_steps=4,
             check_points=8, eval_points=64)
TIME_SAMPLINGS = ("uniform", "logit_normal", "late")
COUPLINGS = ("independent", "ot")


# ---------------------------------------------------------------------------------------------- posegen
def ot_pairing(manifold, x_0: torch.Tensor, x_1: torch.Tensor) -> torch.Tensor:
    """``x_0 (B, D)`` reordered so that ``sum_b d(x_0[b], x_1[b])^2`` is smallest: the minibatch optimal-transport
    coupling (Tong et al. 2023; Pooladian et al. 2023) with the squared geodesic distance as the cost, solved
    exactly by ``scipy.optimize.linear_sum_assignment`` (benchmark-only dependency)."""
    from scipy.optimize import linear_sum_assignment

    B = x_0.shape[0]
    cost = manifold.dist(x_0.unsqueeze(1).expand(B, B, -1), x_1.unsqueeze(0).expand(B, B, -1)) ** 2
    rows, cols = linear_sum_assignment(cost.detach().double().cpu().numpy())
    perm = torch.empty(B, dtype=torch.long)
    perm[torch.as_tensor(cols)] = torch.as_tensor(rows)
    return x_0[perm.to(x_0.device)]


def _rfm_variant(kind: str, loc: float, scale: float, coupling: str = "independent"):
    """An RFM objective whose times follow ``kind`` and whose base and data points are paired by ``coupling``
    (benchmark-only: posegen's RFM draws t ~ U[0, 1 - t_eps] or late, independently of the pairing).

    ``uniform``: t ~ U[0, 1); ``logit_normal``: t = sigmoid(loc + scale n) (Esser et al. 2024); ``late``:
    t = 1 - (1 - u)^(1 + loc) (more weight near the data, loc > 0). ``coupling="ot"``: :func:`ot_pairing`."""
    from posegen.objectives.base import draw_base
    from posegen.objectives.rfm import RFM

    class VariantRFM(RFM):
        name = "rfm_t"

        def __init__(self, t_eps: float = 1e-3):
            super().__init__(t_eps=t_eps)

        def sample(self, flow, x_1, generator=None):
            B = x_1.shape[0]
            x_0 = draw_base(flow, B, x_1, generator)
            if coupling == "ot":
                x_0 = ot_pairing(flow.manifold, x_0, x_1)
            dev = generator.device if generator is not None else x_1.device
            if kind == "logit_normal":
                n = torch.randn(B, generator=generator, dtype=x_1.dtype, device=dev)
                t = torch.sigmoid(loc + scale * n)
            else:  # uniform (loc = 0 is u itself) or late
                u = torch.rand(B, generator=generator, dtype=x_1.dtype, device=dev)
                t = 1 - (1 - u) ** (1 + loc) if kind == "late" else u
            t = (t * (1 - self.t_eps)).to(x_1.device)
            x_t, dx_t = self.path(flow.manifold, x_0, x_1, t)
            return t, x_t, dx_t

    return VariantRFM


def run_posegen(s: Dict[str, Any]) -> Dict[str, Any]:
    """One posegen run under a time budget; the row with its checkpoints."""
    from posegen import PoseFlow
    from posegen.data import earth_splits
    from posegen.manifolds import Product
    from posegen.manifolds.sphere import Sphere
    from posegen.objectives import OBJECTIVES
    from posegen.training import trainer as trainer_mod
    from posegen.training.trainer import TrainConfig, Trainer

    set_threads(1)
    torch.manual_seed(s["seed"])
    train, _, test = earth_splits("fire", s["seed"])
    test_points = test.points[: s["eval_points"]] if s["eval_points"] else test.points
    flow = PoseFlow(Product(Sphere(2, fourier=s["fourier"])), hidden=s["hidden"], depth=s["depth"])
    objective = s.get("objective", "rfm")
    options = json.loads(s.get("objective_options") or "{}")
    ts = s["time_sampling"]
    coupling = s.get("coupling", "independent")
    if objective == "rfm" and (ts != "uniform" or coupling != "independent"):
        kind, *params = ts.split(":")
        vals = [float(v) for v in params[0].split(",")] if params else []
        loc, scale = (vals + [0.0, 1.0][len(vals):])[:2]
        OBJECTIVES["rfm_t"] = _rfm_variant(kind, loc, scale, coupling)
        objective = "rfm_t"
    cfg = TrainConfig(objective=objective, objective_options=options, steps=10 ** 9, batch_size=s["batch_size"], lr=s["lr"],
                      warmup=s["warmup"], lr_schedule=s["lr_schedule"], ema_decay=s["ema_decay"],
                      weight_decay=s["weight_decay"], seed=s["seed"], max_minutes=s["minutes"], log_every=1000,
                      val_every=10 ** 9, checkpoint_every=10 ** 9, progress=False, device="cpu")
    clock = Clock(s["clock"])
    solver = {"method": "rk4", "steps": s["eval_steps"]}
    checkpoints: List[Dict[str, Any]] = []
    state = {}

    def evaluate():
        f = copy.deepcopy(flow)
        f.net.__dict__.pop("forward", None)
        state["ema"].copy_to(f)
        f.eval()
        state["last"] = f
        return score(lambda x: f.log_prob(x, **solver), test_points)

    hook = checkpoint_hook(clock, [float(m) for m in s["checkpoints"]], evaluate, checkpoints)

    class HookedEMA(trainer_mod.EMA):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            state["ema"] = self

        def update(self, model):
            super().update(model)
            hook(self.num_updates)

    class BudgetTrainer(Trainer):
        # the trainer's clock, replaced by ours: started where the loop starts (it sets _t0), with evaluation
        # taken off; cpu or wall time per --clock
        @property
        def _t0(self):
            return self.__dict__.get("_t0_")

        @_t0.setter
        def _t0(self, value):
            self.__dict__["_t0_"] = value
            clock.start()

        def _elapsed(self) -> float:
            return clock() if self.__dict__.get("_t0_") is not None else 0.0

    saved = trainer_mod.EMA
    trainer_mod.EMA = HookedEMA
    try:
        res = BudgetTrainer(flow, train, config=cfg).fit()
    finally:
        trainer_mod.EMA = saved
        OBJECTIVES.pop("rfm_t", None)
    row = {"model": "posegen", "settings": {k: s[k] for k in DEFAULTS if k in s},
           "objective": s.get("objective", "rfm"), "steps_done": res.steps_done, "n_train": int(len(train.points)),
           "n_test": int(test_points.shape[0]), "checkpoints": checkpoints,
           "steps_per_cpu_s": res.steps_done / max(checkpoints[-1]["train_cpu_s"], 1e-9) if checkpoints else None}
    if s["check_points"] and "last" in state:
        row["solver_check"] = solver_check(lambda x, **kw: state["last"].log_prob(x, **kw), test_points,
                                           solver, s["check_points"])
    return row


# ---------------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="seconds-long pipeline check at toy size")
    p.add_argument("--minutes", type=float, help="training budget (default 4)")
    p.add_argument("--checkpoints", help="comma list of training minutes at which the EMA model is scored")
    p.add_argument("--hidden", type=int)
    p.add_argument("--depth", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup", type=int)
    p.add_argument("--lr-schedule", choices=("cosine", "constant"))
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--ema-decay", type=float)
    p.add_argument("--fourier", type=int, help="Sphere(2, fourier=K): sin/cos(pi 2^k x) features, k < K")
    p.add_argument("--time-sampling", help="uniform | logit_normal[:loc,scale] | late[:a] (t = 1 - (1-u)^(1+a))")
    p.add_argument("--eval-steps", type=int, help="rk4 steps of the test NLL")
    p.add_argument("--coupling", choices=COUPLINGS,
                   help="pairing of base and data points in a batch: independent, or ot (minibatch optimal "
                        "transport under the squared geodesic distance; needs scipy)")
    p.add_argument("--objective", choices=("rfm", "cnfm"), help="posegen's objective (default rfm)")
    p.add_argument("--objective-options", help="JSON dict of the objective's options (default {}: its defaults)")
    p.add_argument("--eval-points", type=int, help="test points scored (0: all)")
    p.add_argument("--check-points", type=int, help="test points re-scored with dopri5 at the end (0: none)")
    p.add_argument("--seed", type=int)
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    p.add_argument("--label", default="", help="name of this row in the table")
    p.add_argument("--baseline", action="store_true",
                   help="train the flow_matching baseline (fire_baseline.py) beside posegen, in a second process")
    p.add_argument("--baseline-only", action="store_true", help="only the flow_matching baseline")
    p.add_argument("--baseline-minutes", type=float, help="the baseline's budget (default --minutes); its "
                   "checkpoints are those of --checkpoints within it")
    p.add_argument("--append", action="store_true", help="add the rows to those already in --out")
    p.add_argument("--title", default=None, help="heading of the table in RESULTS.md")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/full/fire_budget.json"))
    args = p.parse_args(argv)
    for k, v in {**DEFAULTS, **(QUICK if args.quick else {})}.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.checkpoints = csv_list(args.checkpoints, float)
    kind = args.time_sampling.split(":")[0]
    if kind not in TIME_SAMPLINGS:
        p.error(f"--time-sampling: unknown kind {kind!r}; valid: {', '.join(TIME_SAMPLINGS)}")
    if args.objective != "rfm" and (args.time_sampling != "uniform" or args.coupling != "independent"):
        p.error("--time-sampling and --coupling are RFM variants; set the options of other objectives with "
                "--objective-options")
    try:
        json.loads(args.objective_options)
    except ValueError as e:
        p.error(f"--objective-options must be a JSON dict, got {args.objective_options!r} ({e})")
    if not args.checkpoints or max(args.checkpoints) > args.minutes + 1e-9:
        p.error("--checkpoints must be non-empty and within --minutes")
    return args


def main(argv=None):
    args = parse_args(argv)
    set_threads(1)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "append")}
    res = Result("fire_budget", {"dataset": "fire", "split": "earth_splits('fire', seed), 80/10/10",
                                 "clock": args.clock, "machine_note": MACHINE_NOTE, "title": args.title})
    res.extra["published"] = PUBLISHED
    if args.append and args.out.exists():
        old = read_json(args.out)
        res.rows = list(old.get("results", []))
        m = old.get("machine", {})
        res.extra["earlier_sessions"] = old.get("earlier_sessions", []) + [
            {"started": old.get("started"), "duration_s": old.get("duration_s"), "commit": m.get("commit"),
             "dirty": m.get("dirty"), "load_avg_1_5_15": m.get("load_avg_1_5_15"), "rows": len(res.rows)}]
        if args.title is None:
            res.args["title"] = old.get("args", {}).get("title")
    pool = fut = None
    from common import machine_info

    start = machine_info()  # the checkout the run starts from (HEAD may move while it trains)
    if args.baseline or args.baseline_only:
        import fire_baseline

        if not fire_baseline.available():
            print(f"flow_matching baseline skipped: {fire_baseline.UNAVAILABLE}", flush=True)
            res.extra["baseline_skipped"] = fire_baseline.UNAVAILABLE
        elif args.baseline_only:
            res.add(_tag(fire_baseline.run_baseline(fire_baseline.settings_for(args)), args, start))
        else:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(1, mp_context=mp.get_context("spawn"), initializer=set_threads,
                                       initargs=(1,))
            fut = pool.submit(fire_baseline.run_baseline, fire_baseline.settings_for(args))
    if not args.baseline_only:
        row = _tag(run_posegen(settings), args, start)
        res.add(row)
        res.write(args.out)
    if fut is not None:
        res.add(_tag(fut.result(), args, start))
        pool.shutdown()
    path = res.write(args.out)
    for r in res.rows[-2:]:
        print(f"{r.get('label') or r['model']}: " + ", ".join(f"{c['minutes']:g} min {c['nll']:.3f}"
                                                             for c in r["checkpoints"]), flush=True)
    print(f"wrote {path} ({res.payload()['duration_s']:.0f} s)")
    return path


def _tag(row, args, m):
    label = args.label if row["model"] == "posegen" else f"{row['model']} baseline"
    row.update(label=label or row["model"], clock=args.clock, quick=bool(args.quick),
               commit=m["commit"], dirty=m["dirty"], load_avg_1_5_15=m["load_avg_1_5_15"])
    return row


# ---------------------------------------------------------------------------------------------- table
def _settings_text(s: Dict[str, Any]) -> str:
    t = f"{s.get('hidden')} x {s.get('depth')}, batch {s.get('batch_size')}, lr {s.get('lr'):g}"
    if s.get("lr_schedule", "cosine") != "cosine":
        t += f" {s['lr_schedule']}"
    if "ema_decay" in s:
        t += f", EMA {s['ema_decay']:g}" if s["ema_decay"] else ", no EMA"
    if s.get("fourier"):
        t += f", fourier {s['fourier']}"
    if s.get("time_sampling", "uniform") != "uniform":
        t += f", t {s['time_sampling']}"
    if s.get("coupling", "independent") != "independent":
        t += f", {s['coupling']} coupling"
    if s.get("objective_options") not in (None, "{}"):
        t += f", options {s['objective_options']}"
    if s.get("warmup") not in (None, 100):
        t += f", warmup {s['warmup']}"
    if s.get("weight_decay"):
        t += f", wd {s['weight_decay']:g}"
    return t


def markdown_section(d: Dict[str, Any], path: str) -> str:
    """The NLL-vs-minutes table of a fire_budget JSON (posegen rows and flow_matching baseline rows)."""
    from make_results import provenance, table

    rows = d.get("results", [])
    a = d.get("args", {})
    clock = a.get("clock", "cpu")
    title = a.get("title") or "Fire (S2): test NLL against minutes of training on one core"
    minutes = sorted({c["minutes"] for r in rows for c in r.get("checkpoints", [])})
    out = [f"## {title}", "", provenance(d, path), "",
           f"Machine: {a.get('machine_note', MACHINE_NOTE)}. Fire seed-0 split (`{a.get('split')}`); every row "
           f"is one run with a training budget equal to its last column (`max_minutes`, the cosine schedule "
           f"follows the clock); the EMA weights are scored on the whole test set at each time (exact "
           f"divergence, rk4), evaluation taken off the clock. Minutes are **{clock}** time of one torch "
           "thread" + (" (the compute the run got on a shared machine; wall time is also recorded)"
                       if clock == "cpu" else "") + ". Published test NLL: "
           + ", ".join(f"{k} {v}" for k, v in d.get("published", PUBLISHED).items()) + ". Lower is better.", ""]
    body = []
    for r in rows:
        cell = {c["minutes"]: c for c in r.get("checkpoints", [])}
        chk = r.get("solver_check")
        if chk and chk.get("rk4_ladder"):
            check = ", ".join(f"{l['steps']}: {l['mean_nll_minus_dopri5']:+.3f}" for l in chk["rk4_ladder"])
        else:
            check = (f"{chk['solver']['steps']}: {chk['mean_nll_diff']:+.3f} (max \\|Δ log p\\| "
                     f"{chk['max_abs_diff']:.2f})" if chk else "—")
        model = (f"posegen {r.get('objective', 'rfm').upper()}" if r["model"] == "posegen"
                 else "flow_matching RFM")
        last = r["checkpoints"][-1] if r.get("checkpoints") else {}
        rate = r["steps_done"] / max(last.get(f"train_{clock}_s", 0) or 1e-9, 1e-9) if last else None
        body.append([r.get("label", ""), model, _settings_text(r.get("settings", {})),
                     str(r.get("steps_done")), f"{rate:.0f}" if rate else "n/a"]
                    + [f"{cell[m]['nll']:.3f}" if m in cell else "" for m in minutes]
                    + [check, str(r.get("commit", "?"))[:10]])
    out.append(table(["run", "model", "settings", "steps", "steps/s", *[f"{m:g} min" for m in minutes],
                      "NLL(rk4) − NLL(dopri5), last model, 64 test points, by rk4 steps", "commit"], body))
    out += ["", "The NLL columns use rk4 with the row's `--eval-steps` (the first entry of the last column). A "
            "negative last column means that rk4 scores the model better than dopri5 (atol = rtol = 1e-6) does on "
            "the same 64 test points: for the sharp fields that Fourier features and late times learn, read "
            "the NLL columns as optimistic by about that amount."]
    if d.get("baseline_skipped"):
        out += ["", f"flow_matching baseline not run: {d['baseline_skipped']}"]
    return "\n".join(out)


if __name__ == "__main__":
    main()
