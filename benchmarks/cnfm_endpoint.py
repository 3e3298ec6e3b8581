"""The CNFM path's end point: what ``select_endpoint`` chooses and what its kernel density estimate scores.

At ``t = 1`` the CNFM path is a KDE of the training points, so its score on held-out points is the
likelihood a model that learns the path exactly reaches (``posegen.paths.endpoint_kde_nll``). For each data
set this prints and records, on its seed-0 split:

* the end point chosen from the training data (``select_endpoint``, per factor) and its selection cost;
* the KDE's validation and test NLL at that end point and at the former fixed default ``sigma_min = 0.05``
  (``kappa_1 = 400``);
* on the earth sets, the KDE's test NLL over a ladder of ``kappa_1``, the cap the end point sets.

Units: the NLL of the user-unit points (the flow's standardisation log-Jacobian added on R^3 factors), as
``posegen eval`` reports it. Data: the earth sets (``data/earth/``) and the Panda tasks of
``robot_nll.py`` (test = the file's validation demos; validation = 10 % of the training demos).

    python benchmarks/cnfm_endpoint.py --out benchmarks/results/cnfm_endpoint.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, Result, set_threads  # noqa: E402

EARTH = ("fire", "volcano", "earthquake", "flood")
ROBOT = ("T7", "R3xSO3", "R3xT7xS3", "R3xT8xS3^6")
LADDER = (400, 1000, 3000, 10000, 20000, 50000, 100000)


def splits(name: str):
    """``(spec, train, val, test)`` of one data set, seed 0."""
    if name in EARTH:
        from posegen.data import earth_splits

        train, val, test = earth_splits(name, 0)
        return "S2", train, val, test
    import robot_nll

    args = {"synthetic_n": 5000, "panda_path": str(REPO / "data" / "panda_reach_grasp.hdf5"), "test_max": 1000}
    train, val, test = robot_nll.load_task(name, args, 0)
    return robot_nll.SPECS[name], train, val, test


def run_one(name: str, ladder: bool) -> dict:
    from posegen import PoseFlow
    from posegen.paths import MixturePath, Schedule
    from posegen.paths.endpoint import endpoint_kde_nll, select_endpoint

    spec, train, val, test = splits(name)
    flow = PoseFlow(spec, hidden=8, depth=1).double()
    flow.fit_standardization(train.points.double())
    M = flow.manifold
    z, zv, zt = (flow.to_internal(d.points.double()) for d in (train, val, test))
    shift = float(flow.log_abs_det)
    t0 = time.process_time()
    choice = select_endpoint(M, z)
    cost = time.process_time() - t0

    def kde(schedule):
        path = MixturePath(M, M.projx(z), schedule=schedule)
        return {"val_nll": endpoint_kde_nll(path, z, zv) + shift, "test_nll": endpoint_kde_nll(path, z, zt) + shift}

    row = {"data": name, "manifold": repr(M), "n_train": len(train), "n_val": len(val), "n_test": len(test),
           "auto": {"sigma_min": choice.sigma_min, "holdout_nll": choice.holdout_nll + shift,
                    "n_holdout": choice.n_holdout, "n_centres": choice.n_centres, "rate_factor": choice.rate_factor,
                    "select_cpu_s": cost, **kde(choice.schedule(M))},
           "former_default": {"sigma_min": 0.05, **kde(Schedule(sigma_min=0.05))}}
    if ladder:
        row["kappa_ladder"] = [{"kappa": k, **kde(Schedule(sigma_min=k ** -0.5))} for k in LADDER]
    return row


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=",".join(EARTH + ROBOT), help="comma list of data sets")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/cnfm_endpoint.json"))
    args = p.parse_args(argv)
    names = [n for n in args.data.split(",") if n]
    bad = [n for n in names if n not in EARTH + ROBOT]
    if bad:
        p.error(f"--data: unknown {bad}; valid: {', '.join(EARTH + ROBOT)}")
    set_threads(1)
    res = Result("cnfm_endpoint", {"data": names})
    for name in names:
        row = run_one(name, ladder=name in EARTH)
        res.add(row)
        a, f = row["auto"], row["former_default"]
        ends = ", ".join(f"{s:.4g}" for s in a["sigma_min"])
        print(f"{name:>11}: end point [{ends}] ({a['select_cpu_s']:.1f} s): KDE val/test NLL {a['val_nll']:.3f} / "
              f"{a['test_nll']:.3f}; sigma_min 0.05: {f['val_nll']:.3f} / {f['test_nll']:.3f}", flush=True)
        res.write(args.out)
    print(f"wrote {res.write(args.out)}")


if __name__ == "__main__":
    main()
