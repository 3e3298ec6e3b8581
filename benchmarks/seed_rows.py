"""The seeds' own earth rows (issue 24, item 3): CNFM and Moser Flow on volcano / earthquake / flood / fire, each
trained from its shipped config (``configs/earth_<set>_<objective>.yaml``) under a CPU-time budget, three seeds.

Protocol (Mathieu & Nickel 2020; the CNFM and Moser Flow papers): for seed ``k``, the random 80/10/10 split
``earth_splits(set, k)`` and training seed ``k`` (config overrides ``data.seed=k``, ``train.seed=k``). Each run
goes through posegen's public training path: the config loader, the flow ``posegen train`` builds, and
:class:`posegen.training.Trainer`, with the configs' budget ``train.max_minutes`` on ``train.clock: cpu``: the
budget (and the cosine schedule that follows it) counts this process's **CPU** time of training, validation off the
clock, so that "20 minutes" means 20 minutes of one core on a shared machine (``posegen train`` on these configs
does the same). The model shipped is the trainer's (the best validated EMA weights). Then, on the test split:

* test NLL, mean and standard error over the test points, with the config's ``eval`` solver (dopri5 at 1e-6 for
  CNFM: rk4-256 blew up far from the data, benchmarks/notes/seed_rows.md);
* the solver check on the first ``--check-points`` test points (``budget_clock.solver_check``): rk4 against dopri5
  (atol = rtol = 1e-6) with rk4 at 1x, 2x and 4x the steps, dopri5 against itself at 1/100 of its tolerances;
  Moser Flow's density is closed form (no ODE): skipped;
* Monte Carlo normalisation, ``integral exp(log_prob)`` by two importance samplers
  (``evaluate.mc_normalisation``, as ``earth_nll.py``), with the eval solver;
* CNFM: the end point chosen from the data and the KDE bound there on the validation points (the trainer's
  diagnostic).

One run is one child process (``one`` action), so a killed run loses only itself; the parent writes every
finished row to ``--out`` atomically and ``--resume`` keeps them. Usage::

    python benchmarks/seed_rows.py run --minutes 0.5 --sets volcano --seeds 0 --out /tmp/seed_rows.json
    python benchmarks/seed_rows.py run --workers 2 --resume          # the 24 runs of 20 CPU minutes
    python benchmarks/seed_rows.py markdown                          # the table for RESULTS.md and the README
    python benchmarks/seed_rows.py rescore --sets volcano --seeds 0  # saved models, the config's eval as it is now
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from budget_clock import solver_check  # noqa: E402
from common import REPO, Result, csv_list, finite, machine_info, read_json, set_threads  # noqa: E402
from earth_nll import PUBLISHED  # noqa: E402
from evaluate import mc_normalisation  # noqa: E402
from make_results import provenance, rel, table  # noqa: E402

from posegen import PoseFlow  # noqa: E402
from posegen.atomic import atomic_open  # noqa: E402
from posegen.cli.datasets import load_splits, model_manifold  # noqa: E402
from posegen.cli.train import build_flow  # noqa: E402
from posegen.config import load_config  # noqa: E402
from posegen.paths.proposal import near_data_points  # noqa: E402
from posegen.solvers.ode import ADAPTIVE  # noqa: E402
from posegen.training import Trainer  # noqa: E402
from posegen.training.config import make_config  # noqa: E402

SETS = ("volcano", "earthquake", "flood", "fire")
OBJECTIVES = ("cnfm", "moser")
PAPERS = {"cnfm": "CNFM (Ben-Hamu et al. 2022)", "moser": "Moser Flow (Rozen et al. 2021)"}
#: the published test NLL each row is measured against (issue 24's goals)
GOALS = {o: PUBLISHED[PAPERS[o]] for o in OBJECTIVES}
DEFAULT_OUT = REPO / "benchmarks" / "results" / "full" / "seed_rows.json"
MACHINE_NOTE = "this project's shared 2-core AMD EPYC CPU, one torch thread per run, no GPU"


def config_path(dataset: str, objective: str) -> Path:
    """``configs/earth_<dataset>_<objective>.yaml`` of the repository."""
    return REPO / "configs" / f"earth_{dataset}_{objective}.yaml"


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- one run
def score_test(flow, points: torch.Tensor, ev: Dict[str, Any]) -> Dict[str, Any]:
    """Test NLL of ``points (N, 3)`` as ``posegen eval`` scores it (the config's ``eval`` section): mean, standard
    error over the points, solver, seconds."""
    t0 = time.perf_counter()
    lp = flow.log_prob(points.to(flow.dtype), divergence=ev["divergence"], chunk_size=ev["chunk_size"],
                       **ev["solver"]).double()
    n = lp.numel()
    return {"nll": float(-lp.mean()), "sem": float(lp.std() / math.sqrt(n)) if n > 1 else None, "n": n,
            "finite": bool(torch.isfinite(lp).all()), "solver": {**flow.solver, **ev["solver"]},
            "seconds": time.perf_counter() - t0}


#: the mass check's proposal: a quarter of its points uniform, the rest in kernels of these widths around the
#: training points, where Moser Flow's negative part sits (posegen.paths.proposal)
MASS_NEAR, MASS_SCALES = 0.75, (0.003, 0.01, 0.03, 0.1)


def moser_mass(flow, n: int, seed: int, centres: Optional[torch.Tensor] = None, chunk: int = 8192
               ) -> Dict[str, Any]:
    """Moser Flow's own normalisation check on ``n`` points of the compact manifold (flow coordinates).

    ``mu = nu - div u`` integrates to exactly 1 for any field ``u`` (divergence theorem), but ``log_prob`` reads
    ``max(mu, eps)``: the density the NLL is scored with has total mass ``1 + excess``, ``excess = integral of
    (eps - mu)_+``, which training keeps small through the penalty ``lam``. Returns ``integral_mu`` (must be 1
    within its standard error: a check of the divergence), ``excess`` (the NLL is optimistic by at most
    ``log(1 + excess)`` nats) with standard errors, and the share of the points where ``mu < eps``.

    With ``centres`` (the training points) the integrals are importance-sampled: :data:`MASS_NEAR` of the points
    come from kernels of widths :data:`MASS_SCALES` around them (:func:`posegen.paths.proposal.near_data_points`,
    unbiased), because the negative part hides in rings beside the data that uniform points rarely hit.
    Without, all points are uniform (the estimate of the rows before session 10)."""
    M = flow.manifold
    eps = float(flow.config["moser_eps"])
    g = torch.Generator().manual_seed(20_000 + int(seed))
    if centres is None:  # uniform points, each weighted by the volume
        z = M.sample_base(n, generator=g, dtype=flow.dtype)
        w = torch.full((n,), math.exp(M.log_volume), dtype=torch.float64)
    else:
        z, w = near_data_points(M, centres.to(flow.dtype), n, MASS_NEAR, MASS_SCALES, generator=g)
    with torch.no_grad():
        mu = torch.cat([flow.moser_density(c)[0] for c in z.split(chunk)]).double()
    w = w.double()
    below = (eps - mu).clamp_min(0)
    (i_mu, i_sem), (ex, ex_sem) = _mean_sem(w * mu), _mean_sem(w * below)
    out = {"n": int(n), "eps": eps, "integral_mu": i_mu, "integral_mu_sem": i_sem, "excess": ex,
           "excess_sem": ex_sem, "share_below_eps": float((mu < eps).double().mean())}
    if centres is not None:
        out["proposal"] = {"near": MASS_NEAR, "scales": list(MASS_SCALES), "centres": int(centres.shape[0])}
    return out


def _mean_sem(v: torch.Tensor):
    return float(v.mean()), float(v.std() / math.sqrt(v.numel()))


#: a Moser row counts only when its floor mass is resolved: the normalised NLL known to within this many nats
MOSER_RESOLVED_NATS = 0.05


def moser_normalised(nll: float, mass: Dict[str, Any]) -> Dict[str, Any]:
    """The test NLL of the density Moser Flow's ``log_prob`` actually scores with, normalised:
    ``max(mu, eps) / (1 + excess)`` is a probability density, so its NLL ``nll + log(1 + excess)`` is the
    honest figure (equal to ``nll`` when the floor carries no mass). ``nll_normalised_range`` spans the excess
    +- 2 standard errors; the row is ``resolved`` when that range is at most ``MOSER_RESOLVED_NATS`` wide (a
    large, spiky negative part is estimated too poorly to report a likelihood)."""
    e, s = mass["excess"], mass["excess_sem"]
    lo, hi = nll + math.log1p(max(e - 2 * s, 0.0)), nll + math.log1p(e + 2 * s)
    return {"nll_normalised": nll + math.log1p(e), "nll_normalised_range": [lo, hi],
            "resolved": hi - lo <= MOSER_RESOLVED_NATS}


#: a row counts only when its checks pass: |NLL(eval solver) - NLL(reference)| on the checked test points at
#: most this many nats, and the defensive Monte Carlo normalisation within 3 standard errors of 1 with an effective
#: sample size of at least MIN_ESS (one point carrying the estimate says a spike or a solver blow-up, not a
#: normalised density)
MAX_SOLVER_GAP = 0.01
MIN_ESS = 10.0


def check_problems(r: Dict[str, Any]) -> List[str]:
    """Why a row's likelihood is not validated: [] when its solver and normalisation checks pass (or were skipped:
    Moser Flow's density is closed form and has its own exact mass check, :func:`moser_normalised`)."""
    out = []
    ladder = solver_ladder(r.get("solver_check"))
    if ladder and abs(ladder[0]["mean_nll_minus_dopri5"]) > MAX_SOLVER_GAP:
        out.append(f"solver {ladder[0]['mean_nll_minus_dopri5']:+.2g} nats from dopri5")
    d = (r.get("normalisation") or {}).get("defensive")
    if d and (d["ess"] < MIN_ESS or abs(d["estimate"] - 1) > 3 * d["sem"]):
        out.append(f"normalisation {d['estimate']:.3g} ± {d['sem']:.2g} (ESS {d['ess']:.0f})")
    return out


def solver_ladder(check: Optional[Dict[str, Any]]) -> Optional[List[Dict[str, Any]]]:
    """The solver check's ladder (fixed steps or tolerances, :func:`budget_clock.solver_check`); None if skipped."""
    check = check or {}
    return check.get("rk4_ladder") or check.get("tolerance_ladder")


def solver_label(solver: Dict[str, Any]) -> str:
    """``rk4-256`` for a fixed-step solver, ``dopri5 (1e-06)`` for an adaptive one (its tolerance)."""
    if solver["method"] in ADAPTIVE:
        return f"{solver['method']} ({solver['atol']:.0e})"
    return f"{solver['method']}-{solver['steps']}"


def row_nll(r: Dict[str, Any]) -> float:
    """The test NLL a row is judged by: Moser Flow's normalised one (:func:`moser_normalised`), else the NLL."""
    return r["test"].get("nll_normalised", r["test"]["nll"])


def cnfm_path(trainer: Trainer) -> Optional[Dict[str, Any]]:
    """CNFM's path: the end point chosen from the data, the times drawn, and the KDE bound on the validation
    points (the trainer's diagnostic); None for other objectives."""
    objective = getattr(trainer, "objective", None)
    if getattr(objective, "name", None) != "cnfm":
        return None
    end = objective.endpoint
    return {"sigma_min": None if end is None else list(end.sigma_min), "times": objective.times,
            "endpoint_kde_nll_val": trainer.diagnostics.get("endpoint_kde_nll")}


def model_file(folder: Path, dataset: str, objective: str, seed: int) -> Path:
    """Where ``--save-models`` keeps a run's flow (and ``rescore --models`` looks for it)."""
    return Path(folder) / f"{dataset}_{objective}_seed{seed}.pt"


def run_config(dataset: str, objective: str, overrides: List[str]) -> Dict[str, Any]:
    """The config of one run: ``configs/earth_<set>_<objective>.yaml`` with ``overrides``, checked to train
    ``objective`` on ``dataset``."""
    path = config_path(dataset, objective)
    cfg = load_config(path, overrides)
    if cfg["objective"]["name"] != objective or cfg["data"]["name"] != dataset:
        raise ValueError(f"{path} trains objective {cfg['objective']['name']!r} on {cfg['data']['name']!r}, "
                         f"expected {objective!r} on {dataset!r}")
    return cfg


def train_settings(config, cfg: Dict[str, Any]) -> Dict[str, Any]:
    """What a row records of its training: the trainer's settings and the network's size."""
    return {"train_config": {k: config.__dict__[k] for k in ("steps", "max_minutes", "batch_size", "lr",
                                                              "ema_decay", "val_every", "objective_options")},
            "model": {k: cfg["model"][k] for k in ("hidden", "depth")}}


def score_flow(flow, cfg: Dict[str, Any], train_points: torch.Tensor, test_points: torch.Tensor,
               job: Dict[str, Any], seed: int) -> Dict[str, Any]:
    """The scoring half of a run (also :func:`rescore`'s): the test NLL with the config's ``eval`` section, the solver
    check (CNFM) or the exact mass check (Moser Flow), and the Monte Carlo normalisation; fields of the row."""
    out: Dict[str, Any] = {"test": score_test(flow, test_points, cfg["eval"])}
    print(f"  [{cfg['data']['name']} {cfg['objective']['name']} seed {seed}] test NLL {out['test']['nll']:.3f} +- "
          f"{out['test']['sem'] or 0:.3f} ({solver_label(out['test']['solver'])})", flush=True)
    solver = dict(cfg["eval"]["solver"])
    if flow.parametrization == "moser":
        out["solver_check"] = {"skipped": "Moser Flow's density is closed form (no ODE)"}
        out["moser_mass"] = moser_mass(flow, job.get("moser_points", 65536), seed, centres=train_points)
        out["test"].update(moser_normalised(out["test"]["nll"], out["moser_mass"]))
    elif job["check_points"]:
        out["solver_check"] = solver_check(lambda x, **kw: flow.log_prob(x.to(flow.dtype), **kw), test_points,
                                           solver, job["check_points"])
    if job["mc_points"]:
        out["normalisation"] = {**mc_normalisation(flow, job["mc_points"], train_points, solver, seed=seed),
                                "solver": solver}
    return out


def run_one(job: Dict[str, Any]) -> Dict[str, Any]:
    """Train and score one (set, objective, seed) run in this process; the JSON-ready row."""
    set_threads(job["threads"])
    dataset, objective, seed = job["set"], job["objective"], int(job["seed"])
    path = config_path(dataset, objective)
    overrides = [f"data.seed={seed}", f"train.seed={seed}", "train.progress=false", "train.device=cpu"]
    overrides += ([f"train.max_minutes={job['minutes']}"] if job.get("minutes") is not None else [])
    overrides += list(job.get("overrides") or [])
    cfg = run_config(dataset, objective, overrides)
    splits = load_splits(cfg, ("train", "valid", "test"))
    train, val, test = splits["train"], splits["valid"], splits["test"]
    flow = build_flow(cfg, model_manifold(cfg, train.manifold), 0)
    config = make_config(None, objective=objective, objective_options=cfg["objective"]["options"], **cfg["train"])
    c0, w0 = time.process_time(), time.perf_counter()
    if config.clock != "cpu" or config.max_minutes is None:
        raise ValueError(f"{path}: the seed rows' budget is train.max_minutes of CPU time (train.clock: cpu), got "
                         f"clock={config.clock!r}, max_minutes={config.max_minutes!r}")
    trainer = Trainer(flow, train, val_data=val, config=config)
    res = trainer.fit()
    flow = res.flow.eval()
    row: Dict[str, Any] = {
        "set": dataset, "objective": objective, "seed": seed, "config": path.relative_to(REPO).as_posix(),
        "config_sha256": file_sha256(path), "overrides": overrides, "manifold": repr(flow.manifold),
        **train_settings(config, cfg),
        "n_train": len(train), "n_val": len(val), "n_test": len(test),
        "steps_done": res.steps_done, "best_step": res.best_step, "best_val_nll": res.best_val_nll,
        "train_cpu_s": res.seconds, "validation_cpu_s": res.validation_seconds,
        "setup_and_train_cpu_s": time.process_time() - c0, "setup_and_train_wall_s": time.perf_counter() - w0,
        "cnfm_path": cnfm_path(trainer), **_machine(),
        # (step, training CPU seconds, validation NLL) at every validation
        "curve": [[r["step"], r.get("elapsed_s"), r["val_nll"]] for r in res.history if "val_nll" in r],
    }
    print(f"  [{dataset} {objective} seed {seed}] {res.steps_done} steps in {row['train_cpu_s'] / 60:.2f} CPU min",
          flush=True)
    row.update(score_flow(flow, cfg, train.points, test.points, job, seed))
    row["total_cpu_s"], row["total_wall_s"] = time.process_time() - c0, time.perf_counter() - w0
    if job.get("save_models"):
        out = model_file(job["save_models"], dataset, objective, seed)
        flow.save(out, extra={"benchmark": "seed_rows", "set": dataset, "seed": seed})
        row["model_path"] = str(out)
    return row


def _machine() -> Dict[str, Any]:
    m = machine_info()
    return {"commit": m["commit"], "dirty": m["dirty"], "load_avg_1_5_15": m["load_avg_1_5_15"]}


# ---------------------------------------------------------------------------------------------- the runs
class SeedRowsResult(Result):
    """Resumable across sessions that choose other sets, objectives, seeds or parallelism (never another
    budget, overrides or check settings)."""

    RESUMABLE = Result.RESUMABLE | {"sets", "save_models", "action"}


def plan(args) -> List[Dict[str, Any]]:
    """One job per (set, objective, seed), in that order; every config must exist (checked before any work)."""
    missing = [str(config_path(d, o)) for d in args.sets for o in args.objectives if not config_path(d, o).exists()]
    if missing:
        raise FileNotFoundError(f"no config for {', '.join(missing)}")
    common = {k: getattr(args, k) for k in ("minutes", "overrides", "check_points", "mc_points", "threads")}
    common["save_models"] = str(args.save_models) if args.save_models else None
    return [{"set": d, "objective": o, "seed": s, **common}
            for d in args.sets for o in args.objectives for s in args.seeds]


def check_resumed(done: Dict[tuple, Dict[str, Any]]) -> None:
    """Refuse finished rows whose config file has changed since they ran (a table must come from one config)."""
    changed = sorted(f"{r['config']} (seed {r['seed']})" for r in done.values()
                     if (REPO / r["config"]).exists() and file_sha256(REPO / r["config"]) != r["config_sha256"])
    if changed:
        raise ValueError(f"--resume: the config changed since these rows ran: {', '.join(changed)}; use another "
                         f"--out, or drop those rows")


def run_processes(jobs: List[Dict[str, Any]], workers: int, on_row, on_failure, poll_s: float = 2.0) -> None:
    """Each job in its own child process (``one`` action), at most ``workers`` at once; ``on_row(job, row)`` as
    each finishes, ``on_failure(job, returncode)`` when one dies. Children still running when this is
    interrupted (Ctrl-C, SIGTERM) are terminated, by their process ids."""
    pending, running = list(jobs), {}
    scratch = Path(tempfile.mkdtemp(prefix="seed_rows_"))
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path}
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                out = scratch / f"{job['set']}_{job['objective']}_seed{job['seed']}.json"
                cmd = [sys.executable, str(Path(__file__).resolve()), "one", "--job", json.dumps(job),
                       "--row-out", str(out)]
                running[subprocess.Popen(cmd, env=env)] = (job, out)
            time.sleep(poll_s)
            for proc in [p for p in running if p.poll() is not None]:
                job, out = running.pop(proc)
                if proc.returncode == 0 and out.exists():
                    on_row(job, read_json(out))
                    out.unlink()
                else:
                    on_failure(job, proc.returncode)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc in running:
            proc.terminate()
        for proc in running:
            proc.wait()
        shutil.rmtree(scratch, ignore_errors=True)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)   # unwinds through run_processes' cleanup


def run(args) -> int:
    jobs = plan(args)
    set_threads(args.threads)   # the machine record says what each run used
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in ("out", "func")}
    res = SeedRowsResult("seed_rows", settings)
    res.extra.update(published=GOALS, machine_note=MACHINE_NOTE)
    key = (lambda r: (r["set"], r["objective"], int(r["seed"])))
    done = res.resume_from(args.out, key) if args.resume else {}
    check_resumed(done)
    res.rows = list(done.values())
    todo = [j for j in jobs if key(j) not in done]
    failures: List[Dict[str, Any]] = []
    print(f"seed_rows: {len(todo)} runs to do, {len(jobs) - len(todo)} kept from {args.out}", flush=True)

    def on_row(job, row):
        res.rows = [r for r in res.rows if key(r) != key(row)] + [row]
        res.write(args.out)

    def on_failure(job, code):
        failures.append({"set": job["set"], "objective": job["objective"], "seed": job["seed"], "returncode": code})
        res.extra["failed"] = failures
        print(f"seed_rows: {job['set']} {job['objective']} seed {job['seed']} failed (exit {code})", flush=True)

    run_processes(todo, args.workers, on_row, on_failure)
    res.write(args.out)
    print(f"wrote {args.out} ({len(res.rows)} rows, {len(failures)} failed)", flush=True)
    return 1 if failures else 0


#: a row's fields that scoring writes; rescoring replaces them and keeps the previous ones in ``rescored``
SCORE_FIELDS = ("test", "solver_check", "moser_mass", "normalisation")


def rescore_one(row: Dict[str, Any], settings: Dict[str, Any], models: Optional[Path]) -> Dict[str, Any]:
    """``row`` scored again from its saved model with its config as it is now (its ``eval`` section may have
    changed since it ran, e.g. to another solver); refuses when the training settings in the config differ from the
    row's (the model would not be the config's). The previous scores go to ``row["rescored"]``."""
    dataset, objective, seed = row["set"], row["objective"], int(row["seed"])
    model = model_file(models, dataset, objective, seed) if models else Path(row.get("model_path") or "")
    if not model.is_file():
        raise FileNotFoundError(f"{dataset} {objective} seed {seed}: no saved model at {model} (run with "
                                f"--save-models, or pass --models)")
    cfg = run_config(dataset, objective, row["overrides"])
    config = make_config(None, objective=objective, objective_options=cfg["objective"]["options"], **cfg["train"])
    now = json.loads(json.dumps(finite(train_settings(config, cfg))))   # as the row stores it
    was = {k: row[k] for k in now}
    if now != was:
        raise ValueError(f"{dataset} {objective} seed {seed}: {row['config']} trains otherwise than this row did "
                         f"({now} now, {was} then): train it again instead")
    flow = PoseFlow.load(model).eval()
    if repr(flow.manifold) != row["manifold"]:
        raise ValueError(f"{model}: manifold {flow.manifold!r}, the row's is {row['manifold']}")
    splits = load_splits(cfg, ("train", "test"))
    c0 = time.process_time()
    scores = score_flow(flow, cfg, splits["train"].points, splits["test"].points, settings, seed)
    previous = {k: row[k] for k in SCORE_FIELDS if k in row}
    history = row.get("rescored", []) + [{**previous, "config_sha256": row["config_sha256"], **_machine(),
                                         "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                                         "cpu_s": time.process_time() - c0}]
    out = {k: v for k, v in row.items() if k not in SCORE_FIELDS}
    return {**out, **scores, "config_sha256": file_sha256(config_path(dataset, objective)), "rescored": history}


def rescore(args) -> int:
    """Score the chosen rows of ``--out`` again from their saved models (one at a time, in this process), with the
    protocol settings (check and Monte Carlo points) ``--out`` was written with, or ``--mc-points``; the file is
    rewritten atomically after each row."""
    d = read_json(args.out)
    mc = d["args"]["mc_points"] if getattr(args, "mc_points", None) is None else int(args.mc_points)
    if mc < 1:
        raise ValueError(f"--mc-points must be a positive number of points, got {mc}")
    settings = {"check_points": d["args"]["check_points"], "mc_points": mc}
    chosen = [i for i, r in enumerate(d["results"]) if r["set"] in args.sets and r["objective"] in args.objectives
              and int(r["seed"]) in args.seeds]
    if not chosen:
        raise ValueError(f"--out {args.out} has no row of sets {args.sets}, objectives {args.objectives}, seeds "
                         f"{args.seeds}")
    set_threads(args.threads)
    for i in chosen:
        d["results"][i] = finite(rescore_one(d["results"][i], settings, args.models))
        with atomic_open(args.out, "w") as fh:
            fh.write(json.dumps(d, indent=1) + "\n")
    print(f"rescored {len(chosen)} rows of {args.out}", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------- the table
def _mean_std(xs: List[float], nd: int = 2) -> str:
    if not xs:
        return "—"
    if len(xs) == 1:
        return f"{xs[0]:.{nd}f} (1 seed)"
    return f"{statistics.mean(xs):.{nd}f} ± {statistics.stdev(xs):.{nd}f}"


def summary(rows: List[Dict[str, Any]]) -> Dict[tuple, Dict[str, Any]]:
    """Per (objective, set): the seeds' test NLLs, their mean, the goal and whether the mean reaches it, the
    mean steps and training CPU minutes."""
    out = {}
    for o in OBJECTIVES:
        for d in SETS:
            rs = sorted((r for r in rows if r["objective"] == o and r["set"] == d), key=lambda r: r["seed"])
            if not rs:
                continue
            nll = [row_nll(r) for r in rs]
            mean = statistics.mean(nll)
            resolved = all(r["test"].get("resolved", True) for r in rs)
            problems = [f"seed {r['seed']}: {p}" for r in rs for p in check_problems(r)]
            out[(o, d)] = {"seeds": [r["seed"] for r in rs], "nll": nll, "mean": mean, "goal": GOALS[o][d],
                           "resolved": resolved, "problems": problems,
                           "reached": resolved and not problems and mean <= GOALS[o][d],
                           "steps": statistics.mean(r["steps_done"] for r in rs),
                           "cpu_min": statistics.mean(r["train_cpu_s"] for r in rs) / 60}
    return out


def markdown_section(d: Dict[str, Any], path: str) -> str:
    """The seeds' rows of a ``seed_rows.json``: mean ± std over seeds per objective and set beside the papers'
    figures, then one line per run (steps, CPU minutes, solver check, normalisation)."""
    rows = d.get("results", [])
    a = d.get("args", {})
    budget = (f"{a['minutes']:g} CPU minutes (--minutes)" if a.get("minutes") is not None
              else "the config's `train.max_minutes` of CPU time")
    out = ["## The seeds' own rows: CNFM and Moser Flow on the earth sets (issue 24, item 3)", "",
           provenance(d, path), "",
           f"Machine: {d.get('machine_note', MACHINE_NOTE)}. Each run: `configs/earth_<set>_<objective>.yaml`, "
           f"split and training seed k (random 80/10/10), {budget} of training per run (validation off the "
           "clock), the best validated EMA model; test NLL with the config's eval solver. Mean ± std over the "
           "seeds of the per-seed mean test NLL; lower is better. Moser Flow's figure is the NLL of the density its "
           "log_prob scores with, normalised (max(mu, eps) / (1 + excess), the floor's excess mass estimated on "
           "65 536 points, three quarters of them importance-sampled near the training points where the negative "
           "part hides), and counts only when that mass is resolved (range within "
           f"{MOSER_RESOLVED_NATS} nats). A row counts only when its checks pass: the eval solver "
           f"within {MAX_SOLVER_GAP} nats of a tighter dopri5 (rk4: dopri5 at 1e-6; dopri5: itself at 1/100 of its "
           f"tolerances) on the checked test points, the Monte Carlo normalisation within 3 standard errors of 1 "
           f"with an "
           f"effective sample size of at least {MIN_ESS:g}.", "",
           table(["", *SETS], _summary_rows(summary(rows))), "", "Per run:", ""]
    ordered = sorted(rows, key=lambda r: (OBJECTIVES.index(r["objective"]), SETS.index(r["set"]), r["seed"]))
    out.append(table(["objective", "set", "seed", "test NLL ± SEM", "solver", "steps", "train CPU min",
                      "NLL(solver) − NLL(reference)", "normalisation (MC, defensive)", "CNFM path", "commit"],
                     [_run_cells(r) for r in ordered]))
    if d.get("not_run"):
        out += ["", f"Not run: {d['not_run']}."]
    if d.get("failed"):
        out += ["", "Failed runs (rerun with --resume): " + ", ".join(
            f"{f['set']} {f['objective']} seed {f['seed']} (exit {f['returncode']})" for f in d["failed"])]
    return "\n".join(out)


def _summary_rows(s: Dict[tuple, Dict[str, Any]]) -> List[List[str]]:
    """Four table rows per objective: posegen's mean ± std, the paper's figure, reached or not, steps and CPU."""
    body = []
    for o in OBJECTIVES:
        cells = {x: s.get((o, x)) for x in SETS}
        body.append([f"posegen {'CNFM' if o == 'cnfm' else 'Moser'}"]
                    + [_mean_std(c["nll"]) if c else "—" for c in cells.values()])
        body.append([f"{PAPERS[o]} (published)"] + [f"{GOALS[o][x]:.2f}" for x in SETS])
        body.append(["reached?"] + [("no: floor mass unresolved" if not c["resolved"] else
                                     f"no: checks failed ({'; '.join(c['problems'])})" if c["problems"] else
                                     f"{'yes' if c['reached'] else 'no'} ({c['mean']:.3f} vs {c['goal']:.2f})")
                                    if c else "not run" for c in cells.values()])
        body.append(["steps; train CPU min (mean)"] + [f"{c['steps']:.0f}; {c['cpu_min']:.1f}" if c else "—"
                                                       for c in cells.values()])
    return body


def _mass_cell(m: Optional[Dict[str, Any]]) -> str:
    if not m:
        return ""
    where = "of the check's points" if m.get("proposal") else "of S2"
    return (f"; exact 1 + {m['excess']:.3g} ± {m['excess_sem']:.2g} (floor, {100 * m['share_below_eps']:.1f} % "
            f"{where} below eps)")


def _run_cells(r: Dict[str, Any]) -> List[str]:
    """One run's line of the per-run table."""
    t, chk, mc = r["test"], r.get("solver_check") or {}, r.get("normalisation") or {}
    ladder = solver_ladder(chk)
    check = (f"{ladder[0]['mean_nll_minus_dopri5']:+.1e} ({chk['n']} pts)" if ladder
             else "closed form" if "skipped" in chk else "—")
    norm = mc.get("defensive")
    fmt = (lambda v: f"{v:.2f}" if abs(v) < 1e6 else f"{v:.2g}")   # a blown-up estimate stays readable
    path_cell = ""
    if r.get("cnfm_path"):
        p = r["cnfm_path"]
        kde = p.get("endpoint_kde_nll_val")
        path_cell = f"σ_min {p['sigma_min'][0]:.4f}, {p['times']} times" + (f"; KDE val {kde:.2f}" if kde is not None
                                                                            else "")
    solver = "closed form" if r["objective"] == "moser" else solver_label(t["solver"])
    nll = f"{t['nll']:.3f} ± {t['sem'] or 0:.3f}"
    if "nll_normalised" in t:   # Moser Flow: the NLL of the normalised density first, the raw one after
        lo, hi = t["nll_normalised_range"]
        nll = (f"{t['nll_normalised']:.3f} [{lo:.2f}, {hi:.2f}]{'' if t['resolved'] else ' unresolved'}; "
               f"raw {t['nll']:.3f} ± {t['sem'] or 0:.3f}")
    return [r["objective"], r["set"], str(r["seed"]), nll, solver,
            str(r["steps_done"]), f"{r['train_cpu_s'] / 60:.1f}", check,
            (f"{fmt(norm['estimate'])} ± {fmt(norm['sem'])} (ESS {norm['ess']:.0f})" if norm else "—")
            + _mass_cell(r.get("moser_mass")),
            path_cell,
            str(r.get("commit") or "?")[:10] + (" (dirty)" if r.get("dirty") else "")]


# ---------------------------------------------------------------------------------------------- CLI
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    r = sub.add_parser("run", help="train and score the runs (one child process each), writing --out after each")
    r.add_argument("--sets", default=",".join(SETS), help=f"comma list from {SETS}")
    r.add_argument("--objectives", default=",".join(OBJECTIVES), help=f"comma list from {OBJECTIVES}")
    r.add_argument("--seeds", default="0,1,2", help="comma list of split and training seeds")
    r.add_argument("--minutes", type=float, default=None,
                   help="CPU minutes of training per run (default: each config's train.max_minutes)")
    r.add_argument("--override", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="another config override for every run (e.g. model.hidden=128); repeatable")
    r.add_argument("--check-points", type=int, default=32, help="test points re-scored with dopri5 (0: none)")
    r.add_argument("--mc-points", type=int, default=1024, help="points per Monte Carlo estimator (0: skip)")
    r.add_argument("--workers", type=int, default=1, help="runs at once (processes)")
    r.add_argument("--threads", type=int, default=1, help="torch threads per run")
    r.add_argument("--save-models", type=Path, default=None, help="folder for the trained flows")
    r.add_argument("--resume", action="store_true", help="keep the finished runs found in --out")
    r.add_argument("--out", type=Path, default=DEFAULT_OUT)
    rs = sub.add_parser("rescore", help="score finished rows of --out again from their saved models, with "
                        "the configs' eval sections as they are now")
    rs.add_argument("--sets", default=",".join(SETS), help=f"comma list from {SETS}")
    rs.add_argument("--objectives", default=",".join(OBJECTIVES), help=f"comma list from {OBJECTIVES}")
    rs.add_argument("--seeds", default="0,1,2", help="comma list of seeds")
    rs.add_argument("--models", type=Path, default=None,
                    help="folder of the saved flows (default: each row's model_path)")
    rs.add_argument("--threads", type=int, default=1, help="torch threads")
    rs.add_argument("--mc-points", type=int, default=None,
                    help="points per Monte Carlo estimator (default: those --out was run with); more points make "
                         "the normalisation check stricter, its standard error and the ESS it needs being the same")
    rs.add_argument("--out", type=Path, default=DEFAULT_OUT)
    m = sub.add_parser("markdown", help="print the table of --out")
    m.add_argument("--out", type=Path, default=DEFAULT_OUT)
    one = sub.add_parser("one", help="(internal) one run in this process")
    one.add_argument("--job", required=True, help="the job as JSON")
    one.add_argument("--row-out", type=Path, required=True)
    args = p.parse_args(argv)
    if args.action in ("run", "rescore"):
        _check_run_args(p, args)
    return args


def _check_run_args(p, args) -> None:
    for name, valid in (("sets", SETS), ("objectives", OBJECTIVES)):
        values = csv_list(getattr(args, name))
        bad = [v for v in values if v not in valid]
        if bad or not values:
            p.error(f"--{name}: expected a comma list from {', '.join(valid)}, got {getattr(args, name)!r}")
        setattr(args, name, values)
    try:
        args.seeds = csv_list(args.seeds, int)
    except ValueError:
        p.error(f"--seeds: expected a comma list of integers, got {args.seeds!r}")
    if not args.seeds or min(args.seeds) < 0:
        p.error(f"--seeds: expected non-negative integers, got {args.seeds!r}")
    minutes = getattr(args, "minutes", None)
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        p.error(f"--minutes: expected a positive number of CPU minutes, got {args.minutes!r}")
    for name in ("workers", "threads"):
        if getattr(args, name, 1) < 1:
            p.error(f"--{name}: expected an integer >= 1, got {getattr(args, name)!r}")
    for name in ("check_points", "mc_points"):
        value = getattr(args, name, 0)
        if value is not None and value < 0:
            p.error(f"--{name.replace('_', '-')}: expected an integer >= 0, got {getattr(args, name)!r}")


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.action == "markdown":
        if not args.out.exists():
            raise FileNotFoundError(f"--out {args.out} does not exist: run the benchmark first")
        print(markdown_section(read_json(args.out), rel(args.out)))
        return 0
    if args.action == "rescore":
        if not args.out.exists():
            raise FileNotFoundError(f"--out {args.out} does not exist: run the benchmark first")
        return rescore(args)
    if args.action == "one":
        row = run_one(json.loads(args.job))
        with atomic_open(args.row_out, "w", mkdir=True) as fh:
            fh.write(json.dumps(finite(row)) + "\n")
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
