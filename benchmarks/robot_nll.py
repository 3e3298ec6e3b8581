"""Robot manifolds: test NLL per objective on Panda reach-and-grasp data, and a forward-kinematics check.

Tasks (``--tasks``):

* ``T7``: joint configurations ``robot0_joint_pos`` on the 7-torus;
* ``R3xSO3``: end-effector poses (``robot0_eef_pos``, ``robot0_eef_quat`` as a rotation);
* ``R3xT7xS3``: the full configuration (eef position, joints, eef quaternion on S^3), with the physical
  check no likelihood can fake: for samples, the distance between the forward kinematics of the sampled
  joints and the sampled end-effector pose (median and 95th percentile, cm and degrees), against the same
  figure for shuffled pairs (joints of one sample, pose of another) and for the held-out data itself;
* ``R3xT8xS3^6``: the larger product of the CNFM paper's robot experiment, on SYNTHETIC data generated
  here from a seed (no real data set of that shape ships with posegen): see :func:`synthetic_big`.

Data: ``data/panda_reach_grasp.hdf5`` (robomimic layout, ``posegen.data.generate``); when it is absent it
is generated once into ``--data-cache`` with ``--panda-demos`` demos, seed 0. Test = the file's
``mask/valid`` demos; ``mask/train`` is split by demo 90/10 (seeded) into train and validation. Moser Flow
needs a compact manifold, so it runs on T7 only.

    python benchmarks/robot_nll.py --quick --out benchmarks/results/quick/robot_nll.json
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Result, Timer, add_run_args, resolve_args, run_jobs, set_threads  # noqa: E402

TASKS = {
    "T7": {"robot0_joint_pos": "T7"},
    "R3xSO3": {"robot0_eef_pos": "R3", "robot0_eef_quat": "SO3"},
    "R3xT7xS3": {"robot0_eef_pos": "R3", "robot0_joint_pos": "T7", "robot0_eef_quat": "S3"},
    "R3xT8xS3^6": None,  # synthetic
}
SPECS = {"T7": "T7", "R3xSO3": "R3 x SO3", "R3xT7xS3": "R3 x T7 x S3", "R3xT8xS3^6": "R3 x T8 x S3^6"}
OBJECTIVES = ("cnfm", "rfm", "moser", "interpolant")
COMPACT = {"T7"}

QUICK = dict(tasks=",".join(TASKS), objectives=",".join(OBJECTIVES), seeds="0", steps=120, batch_size=128,
             hidden=64, depth=3, val_every=60, patience=0, val_steps=4, eval_steps=8, mc_points=128,
             check_points=8, fk_samples=256, cnfm_max_components=256, panda_demos=40, synthetic_n=600,
             test_max=200, mc_steps=4)
# One seed by default: a seed of all 13 runs takes ~22 min with 2 workers (CNFM ~half of it); see README.
FULL = dict(tasks=",".join(TASKS), objectives=",".join(OBJECTIVES), seeds="0", steps=1500, batch_size=256,
            hidden=128, depth=4, val_every=300, patience=3, val_steps=8, eval_steps=16, mc_points=1024,
            check_points=32, fk_samples=2048, cnfm_max_components=1024, panda_demos=300, synthetic_n=5000,
            test_max=1000, mc_steps=8)


def default_cache() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "posegen" / "benchmarks"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--tasks", help=f"comma list from {list(TASKS)}")
    p.add_argument("--objectives", help=f"comma list from {OBJECTIVES} (moser runs on compact tasks only)")
    p.add_argument("--seeds")
    for name, typ in (("steps", int), ("batch-size", int), ("hidden", int), ("depth", int), ("val-every", int),
                      ("patience", int), ("val-steps", int), ("eval-steps", int), ("mc-points", int),
                      ("check-points", int), ("mc-steps", int), ("fk-samples", int), ("cnfm-max-components", int),
                      ("panda-demos", int), ("synthetic-n", int), ("test-max", int)):
        p.add_argument("--" + name, type=typ)
    p.add_argument("--big-cnfm-divergence", default="hutchinson", choices=("exact", "hutchinson"),
                   help="CNFM's divergence on R3xT8xS3^6 (35 coordinates: the exact one costs ~10x per step)")
    p.add_argument("--data", type=Path, default=REPO / "data" / "panda_reach_grasp.hdf5")
    p.add_argument("--data-cache", type=Path, default=default_cache())
    add_run_args(p, "benchmarks/results/robot_nll.json")
    return resolve_args(p, p.parse_args(argv), QUICK, FULL, {"tasks": list(TASKS), "objectives": OBJECTIVES})


# ------------------------------------------------------------------------------------------------ data
def panda_file(args) -> Path:
    """The Panda data file: ``--data`` if it exists, else one generated (once) into ``--data-cache``."""
    if args.data.exists():
        return args.data
    path = Path(args.data_cache) / f"panda_reach_grasp_{args.panda_demos}demos_seed0.hdf5"
    if not path.exists():
        from posegen.data.generate import generate_panda_dataset

        path.parent.mkdir(parents=True, exist_ok=True)
        info = generate_panda_dataset(path, n_demos=args.panda_demos, seed=0)
        print(f"generated {path}: {info['n_kept']} demos, {info['total_frames']} frames "
              f"({info['seconds']:.0f} s)", flush=True)
    return path


def synthetic_big(n: int, seed: int = 0, clusters: int = 6):
    """Seeded synthetic points on ``R3 x T8 x S3^6`` (coord_dim 35), shape ``(n, 35)``, float32.

    A mixture of ``clusters`` curved components: a latent ``s ~ U(0, 1)`` moves every factor along its own
    smooth curve (a helix in R^3, a line in each angle, a geodesic-like arc of each quaternion), plus small
    noise (1 cm, 0.05 rad, 0.05 rad). The factors are thereby strongly coupled, like the joints, tool pose
    and finger links of a grasping hand: no factor is independent of the others given the cluster.
    """
    import posegen.manifolds as pm

    g = torch.Generator().manual_seed(1_000 + int(seed))
    S3 = pm.Sphere(3)
    k = torch.randint(clusters, (n,), generator=g)
    s = torch.rand(n, 1, generator=g, dtype=torch.float64)
    c_pos = torch.randn(clusters, 3, generator=g, dtype=torch.float64) * 0.3
    c_ang = (torch.rand(clusters, 8, generator=g, dtype=torch.float64) * 2 - 1) * math.pi
    c_slope = torch.randn(clusters, 8, generator=g, dtype=torch.float64)
    c_q = S3.projx(torch.randn(clusters, 6, 4, generator=g, dtype=torch.float64))
    c_w = torch.randn(clusters, 6, 4, generator=g, dtype=torch.float64)
    helix = torch.cat([torch.cos(2 * math.pi * s), torch.sin(2 * math.pi * s), s], -1) * 0.1
    pos = c_pos[k] + helix + 0.01 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    ang = pm.wrap_angle(c_ang[k] + c_slope[k] * s + 0.05 * torch.randn(n, 8, generator=g, dtype=torch.float64))
    base = c_q[k]                                              # (n, 6, 4)
    u = s.unsqueeze(-1) * c_w[k] + 0.05 * torch.randn(n, 6, 4, generator=g, dtype=torch.float64)
    quats = S3.expmap(base, S3.proju(base, u))
    return torch.cat([pos, ang, quats.reshape(n, 24)], -1).float()


def load_task(task: str, args, seed: int):
    """``(train, val, test)`` PoseDatasets of one task (test capped at ``--test-max`` points, seeded)."""
    from posegen.data import PoseDataset, load_robomimic

    if task == "R3xT8xS3^6":
        n = int(args["synthetic_n"])
        pts = synthetic_big(n, seed=0)
        ds = PoseDataset(pts, SPECS[task], meta={"source": "synthetic_big(seed=0)"})
        train, val, test = ds.random_split((0.8, 0.1, 0.1), seed)
        return train, val, test
    keys = TASKS[task]
    path = args["panda_path"]
    full = load_robomimic(path, keys, mask="train")
    test = load_robomimic(path, keys, mask="valid")
    train, val = full.split_by_group((0.9, 0.1), seed=seed)
    if len(test) > args["test_max"]:
        test = test.subsample(n=args["test_max"], seed=seed)
    return train, val, test


# ------------------------------------------------------------------------------------------------ FK check
def fk_consistency(x: torch.Tensor, seed: int = 0):
    """Distances between the FK of the joints and the end-effector pose in points ``x (N, 14)`` of
    ``R3 x T7 x S3`` (eef pos m, joints rad wrapped, eef quat xyzw): median and p95 of the position error
    (cm) and rotation error (deg), for the pairs as given and for shuffled pairs (a random permutation of
    the joint rows). Also the fraction of joint vectors inside the Panda's limits."""
    from posegen.data import panda

    x = x.double()
    q, valid = panda.unwrap_to_limits(x[:, 3:10])
    pos, quat = panda.fk(q, frame="tcp")

    def errors(p_fk, q_fk):
        e_pos = (p_fk - x[:, :3]).norm(dim=-1) * 100.0
        q_eef = x[:, 10:14] / x[:, 10:14].norm(dim=-1, keepdim=True)
        dot = (q_fk * q_eef).sum(-1).abs().clamp(max=1.0)
        e_rot = torch.rad2deg(2 * torch.acos(dot))
        pct = lambda e, p: float(torch.quantile(e, p))  # noqa: E731
        return {"pos_cm_median": pct(e_pos, 0.5), "pos_cm_p95": pct(e_pos, 0.95),
                "rot_deg_median": pct(e_rot, 0.5), "rot_deg_p95": pct(e_rot, 0.95)}

    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    return {"n": int(x.shape[0]), "paired": errors(pos, quat), "shuffled": errors(pos[perm], quat[perm]),
            "within_limits": float(valid.double().mean())}


# ------------------------------------------------------------------------------------------------ runs
def run_one(job):
    from evaluate import fit_and_evaluate

    task, objective, seed, a = job
    set_threads(a["threads"])
    train, val, test = load_task(task, a, seed)
    options = dict(a["objective_options"][objective])
    if task == "R3xT8xS3^6" and objective == "cnfm":
        options["divergence"] = a["big_cnfm_divergence"]
    row, flow = fit_and_evaluate(
        SPECS[task], train, val, test.points, objective, seed=seed, steps=a["steps"],
        batch_size=a["batch_size"], hidden=a["hidden"], depth=a["depth"], lr=a["lr"], val_every=a["val_every"],
        patience=a["patience"], val_solver={"method": "rk4", "steps": a["val_steps"]},
        test_solver={"method": "rk4", "steps": a["eval_steps"]},
        objective_options=options, check_points=a["check_points"],
        mc_points=a["mc_points"], mc_solver={"method": "rk4", "steps": a["mc_steps"]})
    row["task"] = task
    row["data"] = train.meta.get("source", "?") if task != "R3xT8xS3^6" else "synthetic_big(seed=0)"
    if task == "R3xT7xS3" and a["fk_samples"]:
        with Timer() as t:
            x = flow.sample(a["fk_samples"], seed=seed, method="rk4", steps=a["eval_steps"])
        row["fk"] = {"samples": fk_consistency(x, seed), "data_test": fk_consistency(test.points, seed),
                     "sample_seconds": t.s}
    return row


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"}
    # interpolant: the trigonometric one on R^3 factors, so that it differs from RFM (with the linear one it
    # is RFM exactly; on compact factors both follow geodesics, so on T7 the two rows still coincide)
    options = {"cnfm": {"max_components": args.cnfm_max_components} if args.cnfm_max_components else {},
               "interpolant": {"interpolant": "trig"}}
    settings["objective_options"] = {o: options.get(o, {}) for o in args.objectives}
    if any(t != "R3xT8xS3^6" for t in args.tasks):
        settings["panda_path"] = str(panda_file(args))
    res = Result("robot_nll", settings)
    done = res.resume_from(args.out, lambda r: (r["task"], r["objective"], r["seed"])) if args.resume else {}
    jobs = []
    for task in args.tasks:
        for o in args.objectives:
            if o == "moser" and task not in COMPACT:
                continue  # Moser Flow needs a compact manifold: no R^3 factor
            for s in args.seeds:
                if (task, o, s) in done:
                    res.add(done[(task, o, s)])
                else:
                    jobs.append((task, o, s, settings))

    def on_result(job, row):
        res.add(row)
        res.write(args.out)
        fk = row.get("fk", {}).get("samples", {}).get("paired")
        extra = f", FK pos median {fk['pos_cm_median']:.1f} cm" if fk else ""
        print(f"{row['task']:>11} {row['objective']:>11} seed {row['seed']}: test NLL {row['test']['nll']:.3f}"
              f"{extra} ({row['total_seconds']:.0f} s)", flush=True)

    run_jobs(run_one, jobs, workers=args.workers, threads=args.threads, on_result=on_result)
    path = res.write(args.out)
    print(f"wrote {path} ({res.payload()['duration_s']:.0f} s)")
    return path


if __name__ == "__main__":
    main()
