"""Train and export the IK weights shipped with posegen (``IKSampler.pretrained(name)``).

    # train (resumable: run it again to continue from the last checkpoint of benchmarks/checkpoints/ik_<robot>/,
    # which is committed between sessions so that a long run survives a fresh checkout)
    OMP_NUM_THREADS=1 python benchmarks/ik_pretrained.py train --robot panda
    # a warm restart from the finished run's EMA weights (the config's ``restarts``; resumable the same way)
    OMP_NUM_THREADS=1 python benchmarks/ik_pretrained.py train --robot panda --stage 1
    # write the EMA weights of the last stage's checkpoint into the package
    python benchmarks/ik_pretrained.py export --robot panda
    # the shipped weights on held-out targets (IKFlow's protocol), JSON to benchmarks/results/full/
    OMP_NUM_THREADS=1 python benchmarks/ik_pretrained.py eval --robot panda

Settings come from ``configs/pretrained/ik.yaml`` (a step budget per robot, and optionally ``restarts``: stages that
each start from the EMA weights of the finished stage before, with a fresh optimiser, their own seed and their own
warm-up and cosine schedule, i.e. SGDR-style warm restarts when a run's schedule has annealed but its error still
falls with steps). Training is posegen's one loop
(:class:`posegen.training.Trainer` through :meth:`IKSampler.fit`, atomic checkpoints every
``checkpoint_every`` steps); each step's draws come from a generator seeded by ``(seed, step)``, so a run
stopped and resumed any number of times gives the weights an uninterrupted run gives. ``export`` takes the
EMA weights of ``RUN/ckpt.pt`` (an unfinished run can be exported; the file records its step) and writes
``posegen/samplers/weights/ik_<robot>.pt`` atomically.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posegen.checkpoint import load_checkpoint  # noqa: E402
from posegen.rotations import pos_quat_from_se3  # noqa: E402
from posegen.samplers import IKSampler  # noqa: E402
from posegen.samplers.shipped import weights_path  # noqa: E402

CONFIG = ROOT / "configs" / "pretrained" / "ik.yaml"


def settings(robot: str, config=CONFIG, stage: int = 0) -> dict:
    """The settings of ``robot``'s stage ``stage`` (0: the first run; ``k``: the config's ``restarts[k - 1]`` over
    them), with ``start_step`` (steps of the stages before) added."""
    cfg = yaml.safe_load(Path(config).read_text())
    if robot not in cfg["robots"]:
        raise SystemExit(f"{robot!r} is not in {config} (robots: {sorted(cfg['robots'])})")
    s = {**cfg["defaults"], **(cfg["robots"][robot] or {})}
    restarts = s.pop("restarts", None) or []
    if not 0 <= stage <= len(restarts):
        raise SystemExit(f"{robot!r} has stages 0-{len(restarts)} in {config} (its restarts: {len(restarts)}), "
                         f"not {stage}")
    start = 0
    for k in range(stage):
        start += int(s["steps"])
        s = {**s, **restarts[k]}
    return {**s, "start_step": start, "stage": stage}


def run_dir(args, stage: int = 0) -> Path:
    """The run folder of a stage: ``--run`` (stage 0) or ``--run``_restart<k>, else
    ``benchmarks/checkpoints/ik_<robot>[_restart<k>]`` (committed between sessions)."""
    base = Path(args.run) if args.run else ROOT / "benchmarks" / "checkpoints" / f"ik_{args.robot}"
    return base if stage == 0 else base.with_name(f"{base.name}_restart{stage}")


def _shown(path) -> str:
    """A config path as the weights record it: relative to the repository where it lies inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def _ema_sampler(robot: str, s: dict, ck: dict) -> IKSampler:
    """An IKSampler of ``robot`` with stage settings ``s``, holding the EMA weights of checkpoint ``ck``."""
    ik = IKSampler(robot, hidden=s["hidden"], depth=s["depth"])
    ik.flow.load_state_dict({k: v for k, v in ck["ema"]["shadow"].items()})
    return ik


def _finished(args, stage: int) -> dict:
    """The checkpoint of a finished stage (refused, with what to run, while it is not)."""
    s = settings(args.robot, args.config, stage)
    path = run_dir(args, stage) / "ckpt.pt"
    if not path.exists():
        raise SystemExit(f"stage {stage} of {args.robot!r} has no checkpoint at {path}: run train --stage {stage}")
    ck = load_checkpoint(path, map_location="cpu", kind="training")
    if int(ck["step"]) < int(s["steps"]):
        raise SystemExit(f"stage {stage} of {args.robot!r} is at step {ck['step']} of {s['steps']}: run train "
                         f"--stage {stage} to finish it first")
    return ck


def cmd_train(args) -> None:
    torch.set_num_threads(args.threads)
    s = settings(args.robot, args.config, args.stage)
    torch.manual_seed(s["seed"])  # the network's initialisation (stage 0; later stages start from the one before)
    if args.stage:
        ik = _ema_sampler(args.robot, s, _finished(args, args.stage - 1))
        ik.training = {"steps": s["start_step"]}  # keeps the standardisation of stage 0's data
    else:
        ik = IKSampler(args.robot, hidden=s["hidden"], depth=s["depth"])
    # a config without time_sampling means uniform t, what every stage used before the option (fit's default is late)
    ik.fit(steps=s["steps"], batch_size=s["batch_size"], lr=s["lr"], warmup=s["warmup"], ema_decay=s["ema_decay"],
           seed=s["seed"], time_sampling=s.get("time_sampling", "uniform"), device="cpu", log_every=args.log_every,
           out_dir=run_dir(args, args.stage), resume=True, checkpoint_every=s["checkpoint_every"], verbose=args.verbose)
    print(f"done: {ik.training['steps']} steps; export with: python {Path(__file__).name} export --robot "
          f"{args.robot}", flush=True)


def cmd_export(args) -> None:
    stage = args.stage
    if stage is None:  # the last stage that has a checkpoint
        stage = 0
        while (run_dir(args, stage + 1) / "ckpt.pt").exists():
            stage += 1
    s = settings(args.robot, args.config, stage)
    before = [_finished(args, k) for k in range(stage)]
    ck = load_checkpoint(run_dir(args, stage) / "ckpt.pt", map_location="cpu", kind="training")
    ik = _ema_sampler(args.robot, s, ck)
    ik.flow.eval()
    seconds = sum(float(c["elapsed_s"]) for c in before) + float(ck["elapsed_s"])
    steps = s["start_step"] + int(ck["step"])
    samples = sum(int(c["step"]) * int(settings(args.robot, args.config, k)["batch_size"])
                  for k, c in enumerate(before)) + int(ck["step"]) * int(s["batch_size"])
    ik.training = {"steps": steps, "of_steps": s["start_step"] + int(s["steps"]), "seconds": seconds,
                   "samples_seen": samples, "settings": s, "stage": stage,
                   "config": _shown(args.config), "script": "benchmarks/ik_pretrained.py",
                   "device": "cpu", "objective": "rfm"}
    out = Path(args.out) if args.out else weights_path("ik", args.robot)
    path = ik.save(out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB): stage {stage}, step {steps} of "
          f"{ik.training['of_steps']}, {seconds / 3600:.2f} h of training", flush=True)


def held_out(robot, n: int = 200, seed: int = 10_000):
    """``(q (n, dof), targets (n, 7))``: eval's held-out poses (position, quaternion xyzw), FK of joints drawn
    uniformly inside the limits from their own seed (not the training stream, seed 0 and up)."""
    q = robot.manifold.sample_base(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return q, torch.cat(pos_quat_from_se3(robot.fk(q), "xyzw"), -1)


def _raw(ik, targets, per_target: int, **options) -> dict:
    """Raw errors, spread and thread CPU time of ``ik.sample(targets, per_target, seed=0, **options)``."""
    import time

    t0 = time.process_time()
    raw = ik.sample(targets, per_target, seed=0, **options)["joints"].double()
    cpu = time.process_time() - t0
    pe, re = ik.errors(raw, targets)
    return {"position_mm_mean": float(pe.mean()) * 1e3, "position_mm_median": float(pe.median()) * 1e3,
            "rotation_deg_mean": float(re.mean().rad2deg()),
            "mean_pairwise_joint_distance": float(torch.cdist(raw, raw).mean()),
            "cpu_s_per_1000": 1000 * cpu / raw[..., 0].numel()}


#: the latent scale of IKFlow's own evaluation (``_DEFAULT_LATENT_SCALE = 0.75`` in jstmn/ikflow's
#: scripts/evaluate.py, 0.75 in its first evaluate.py too): its published errors (Panda "full" 6.83 mm, "lite"
#: 14.2 mm) are of draws whose Gaussian latent has standard deviation 0.75, not 1. posegen's ``temperature`` scales
#: the Gaussian base of joints with limits the same way (:meth:`posegen.PoseFlow.sample`), so the like-for-like
#: figure is posegen's raw error at temperature 0.75.
IKFLOW_LATENT_SCALE = 0.75


def _temperatures(ik, targets, per_target: int, temperatures: str) -> list:
    """Raw errors and spread of the draws at each temperature (a narrower base trades spread for accuracy)."""
    return [{"temperature": float(t), **_raw(ik, targets, per_target, temperature=float(t))}
            for t in temperatures.split(",") if t]


def _solvers(ik, targets, per_target: int, solvers: str) -> list:
    """Raw errors of the draws with each sampling integrator (``rk4:32``, ``dopri5``): how much of the raw error is
    the integrator's rather than the model's."""
    rows = []
    for spec in [x for x in solvers.split(",") if x]:
        method, _, steps = spec.partition(":")
        options = {"method": method, **({"steps": int(steps)} if steps else {})}
        rows.append({"solver": options, **_raw(ik, targets, per_target, **options)})
    return rows


def _failures(ik, q_src: torch.Tensor, ref: dict, limit: int) -> dict:
    """What the refined rows that failed have in common: the smallest singular value of the Jacobian at each
    target's source joints ``q_src (T, dof)`` (how near a singularity the target is; quantiles over all targets
    for comparison), the rows' errors, and whether a returned row has a joint on its limit. ``limit`` rows listed."""
    robot = ik.robot
    sv_all = torch.linalg.svdvals(robot.jacobian(q_src))[:, -1]
    ti, si = (~ref["success"]).nonzero(as_tuple=True)
    j = ref["joints"][ti, si].double()
    lim = robot.joint_limits
    on_limit = ((j <= lim[:, 0]) | (j >= lim[:, 1])).any(-1)
    qs = torch.tensor([0.05, 0.25, 0.5], dtype=torch.float64)
    rows = [{"target": int(t), "position_mm": 1e3 * float(ref["position_error"][t, i]),
             "rotation_rad": float(ref["rotation_error"][t, i]), "target_min_singular_value": float(sv_all[t]),
             "row_on_a_limit": bool(b)} for t, i, b in zip(ti[:limit], si[:limit], on_limit[:limit])]
    return {"rows": int(ti.numel()), "targets": int(ti.unique().numel()), "rows_on_a_limit": int(on_limit.sum()),
            "min_singular_value_quantiles_0.05_0.25_0.5": {
                "all_targets": sv_all.quantile(qs).tolist(),
                "failing_targets": sv_all[ti.unique()].quantile(qs).tolist() if ti.numel() else None},
            "listed": rows}


def cmd_eval(args) -> None:
    """Raw and refined accuracy of the shipped weights on ``--targets`` held-out poses x ``--per-target``."""
    import json
    import time

    from common import git_commit  # benchmarks/common.py: the commit and whether posegen/ or benchmarks/ differ

    torch.set_num_threads(1)
    ik = IKSampler.pretrained(args.robot)
    q, targets = held_out(ik.robot, args.targets, args.target_seed)
    t0 = time.process_time()
    raw = ik.sample(targets, args.per_target, seed=0)["joints"]
    raw_cpu = time.process_time() - t0
    pe, re = ik.errors(raw.double(), targets)
    t0 = time.process_time()
    ref = ik.sample(targets, args.per_target, seed=0, refine=True)
    ref_cpu = time.process_time() - t0
    ok = ref["success"]
    inside = ik.robot.within_limits(ref["joints"].reshape(-1, ik.robot.dof)).float().mean()
    row = {"robot": args.robot, "steps": ik.training.get("steps"), "of_steps": ik.training.get("of_steps"),
           "training_hours": ik.training.get("seconds", 0) / 3600, "targets": args.targets,
           "per_target": args.per_target, "target_seed": args.target_seed,
           "raw_position_mm": {"mean": float(pe.mean()) * 1e3, "median": float(pe.median()) * 1e3},
           "raw_rotation_deg": {"mean": float(re.mean().rad2deg()), "median": float(re.median().rad2deg())},
           "refined_exact_1mm_0.01rad": float(ok.float().mean()), "refined_inside_limits": float(inside),
           "cpu_s_per_1000_raw": 1000 * raw_cpu / raw[..., 0].numel(),
           "cpu_s_per_1000_exact": 1000 * ref_cpu / max(int(ok.sum()), 1),
           "raw_ikflow_latent_scale": {"temperature": IKFLOW_LATENT_SCALE, **_raw(
               ik, targets, args.per_target, temperature=IKFLOW_LATENT_SCALE)},
           "raw_by_temperature": _temperatures(ik, targets, args.per_target, args.temperatures),
           "raw_by_solver": _solvers(ik, targets, args.per_target, args.solvers),
           "machine": "this project's shared 2-core CPU, one thread", "when": time.strftime("%Y-%m-%d %H:%M"),
           "failures": _failures(ik, q, ref, args.list_failures), **git_commit()}
    out = Path(args.out or ROOT / "benchmarks" / "results" / "full" / f"ik_pretrained_{args.robot}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(row, indent=1))
    print(json.dumps(row, indent=1), flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--robot", required=True)
    t.add_argument("--run", default=None, help="run folder (ckpt.pt, metrics.jsonl), resumed when it exists "
                   "(default benchmarks/checkpoints/ik_<robot>)")
    t.add_argument("--config", default=str(CONFIG))
    t.add_argument("--stage", type=int, default=0, help="0: the first run; k: the config's k-th warm restart, from "
                   "the EMA weights of stage k - 1 (which must be finished)")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--log-every", type=int, default=500)
    t.add_argument("--verbose", action="store_true")
    e = sub.add_parser("export")
    e.add_argument("--robot", required=True)
    e.add_argument("--run", default=None, help="default benchmarks/checkpoints/ik_<robot>")
    e.add_argument("--config", default=str(CONFIG))
    e.add_argument("--stage", type=int, default=None, help="default: the last stage with a checkpoint (an "
                   "unfinished one too)")
    e.add_argument("--out", default=None, help="default: posegen/samplers/weights/ik_<robot>.pt")
    v = sub.add_parser("eval")
    v.add_argument("--robot", required=True)
    v.add_argument("--targets", type=int, default=200)
    v.add_argument("--per-target", type=int, default=50)
    v.add_argument("--target-seed", type=int, default=10_000)
    v.add_argument("--temperatures", default="1,0.8,0.6,0.4", help="raw draws also at these temperatures")
    v.add_argument("--solvers", default="rk4:8,rk4:16,rk4:32,dopri5",
                   help="raw draws also with these integrators (method[:steps])")
    v.add_argument("--list-failures", type=int, default=20, help="refined rows that failed, listed with their errors "
                   "and how near a singularity their target is (all are counted)")
    v.add_argument("--out", default=None)
    args = p.parse_args(argv)
    {"train": cmd_train, "export": cmd_export, "eval": cmd_eval}[args.cmd](args)


if __name__ == "__main__":
    main()
