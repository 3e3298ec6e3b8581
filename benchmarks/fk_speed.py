"""Per-configuration cost of forward kinematics and FK + Jacobian on one CPU thread.

    OMP_NUM_THREADS=1 python benchmarks/fk_speed.py            # JSON to benchmarks/results/fk_speed.json
    python benchmarks/fk_speed.py --robots panda --batches 1,1000 --repeats 3 --out /tmp

Compared, on the same random joint vectors (uniform inside the limits, float64):

* ``pytorch_kinematics``: ``Robot.fk`` / ``Robot.fk_and_jacobian`` with ``robot.kinematics =
  "pytorch_kinematics"`` (the library's chain, what posegen used before :mod:`posegen.robots.kinematics`);
* ``program``: the same calls with the default backend, :class:`~posegen.robots.kinematics.SerialProgram`
  (also in float32);
* ``pinocchio`` (``pip install pin``, benchmark-only): a Python loop over the batch of
  ``forwardKinematics + updateFramePlacement`` (FK) and ``computeJointJacobians + updateFramePlacement +
  getFrameJacobian(LOCAL_WORLD_ALIGNED)`` (FK + Jacobian) on the same URDF; Pinocchio has no batched Python
  call. Its poses and Jacobians are checked against posegen's first (1e-10), so the three compute the same
  thing.

Each number is the fastest of ``--repeats`` rounds of this thread's CPU time (``time.thread_time``) over at
least ``--min-configs`` configurations, divided by the configurations: microseconds per configuration. The
methods take turns round by round, so a change in the machine's load hits them alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from importlib import resources
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Result, csv_list, set_threads  # noqa: E402

from posegen.robots import load  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _pinocchio():
    try:
        import pinocchio
    except ImportError as e:
        raise ImportError(f"benchmarks/fk_speed.py compares against Pinocchio: pip install pin ({e})") from e
    return pinocchio


class PinocchioChain:
    """Pinocchio's model of a built-in robot's URDF, called per configuration ``q (dof,)`` (numpy)."""

    def __init__(self, robot):
        pin = _pinocchio()
        path = resources.files("posegen.robots.descriptions") / f"{robot.name}.urdf"
        self.pin = pin
        self.model = pin.buildModelFromUrdf(str(path))
        self.data = self.model.createData()
        self.fid = self.model.getFrameId(robot.ee_link, pin.FrameType.BODY)
        self.joints = [self.model.joints[self.model.getJointId(n)] for n in robot.joint_names]
        self.lwa = pin.ReferenceFrame.LOCAL_WORLD_ALIGNED

    def config(self, q_row):
        """Pinocchio's configuration vector of posegen's joint vector (continuous joints as cos, sin)."""
        import numpy as np
        cfg = self.pin.neutral(self.model)
        for jm, v in zip(self.joints, q_row.tolist()):
            cfg[jm.idx_q:jm.idx_q + jm.nq] = [np.cos(v), np.sin(v)] if jm.nq == 2 else [v]
        return cfg

    def fk(self, cfg):
        self.pin.forwardKinematics(self.model, self.data, cfg)
        self.pin.updateFramePlacement(self.model, self.data, self.fid)
        return self.data.oMf[self.fid]

    def fk_and_jacobian(self, cfg):
        self.pin.computeJointJacobians(self.model, self.data, cfg)
        self.pin.updateFramePlacement(self.model, self.data, self.fid)
        return self.data.oMf[self.fid], self.pin.getFrameJacobian(self.model, self.data, self.fid, self.lwa)


def check_pinocchio(robot, chain: PinocchioChain, q: torch.Tensor) -> float:
    """Largest difference of Pinocchio's pose and Jacobian from posegen's over the rows of ``q``."""
    T, J = robot.fk_and_jacobian(q)
    worst = 0.0
    for i in range(q.shape[0]):
        M, Jp = chain.fk_and_jacobian(chain.config(q[i]))
        Jp = torch.as_tensor(Jp)[:, [chain.joints[k].idx_v for k in range(robot.dof)]]
        worst = max(worst, float((torch.as_tensor(M.homogeneous) - T[i]).abs().max()),
                    float((Jp - J[i]).abs().max()))
    if worst > 1e-10:
        raise RuntimeError(f"{robot.name}: Pinocchio and posegen disagree by {worst:.3g}: not the same chain")
    return worst


def methods(robot, chain, q: torch.Tensor):
    """``{(method, what, dtype): fn}``; each ``fn()`` evaluates the whole batch ``q``."""

    def posegen(backend, call, x):
        def fn():
            robot.kinematics = backend
            try:
                return getattr(robot, call)(x)
            finally:
                robot.kinematics = "program"
        return fn

    out = {}
    for call in ("fk", "fk_and_jacobian"):
        out[("pytorch_kinematics", call, "float64")] = posegen("pytorch_kinematics", call, q)
        out[("program", call, "float64")] = posegen("program", call, q)
        out[("program", call, "float32")] = posegen("program", call, q.float())
        if chain is not None:
            cfgs = [chain.config(row) for row in q]
            f = getattr(chain, call)
            out[("pinocchio", call, "float64")] = lambda f=f, cfgs=cfgs: [f(c) for c in cfgs]
    return out


def measure(fns, batch: int, repeats: int, min_configs: int):
    """Microseconds per configuration of each ``fn`` (fastest round of thread CPU time), in turns."""
    calls = max(1, -(-min_configs // batch))
    best = {k: float("inf") for k in fns}
    for fn in fns.values():  # warm-up (caches per dtype, first-call costs)
        fn()
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.thread_time()
            for _ in range(calls):
                fn()
            best[k] = min(best[k], (time.thread_time() - t0) / (calls * batch))
    return {k: 1e6 * v for k, v in best.items()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--robots", type=csv_list, default=["panda", "ur5e", "iiwa14"])
    p.add_argument("--batches", type=lambda s: csv_list(s, int), default=[1, 100, 1000, 3000])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--min-configs", type=int, default=2000, help="configurations per round at least")
    p.add_argument("--no-pinocchio", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    set_threads(args.threads)
    res = Result("fk_speed", vars(args))
    for name in args.robots:
        robot = load(name)
        g = torch.Generator().manual_seed(args.seed)
        q_all = robot.manifold.sample_base(max(args.batches), generator=g, dtype=torch.float64)
        chain = None if args.no_pinocchio else PinocchioChain(robot)
        if chain is not None:
            res.extra.setdefault("pinocchio_max_difference", {})[name] = check_pinocchio(robot, chain, q_all[:50])
        for batch in args.batches:
            us = measure(methods(robot, chain, q_all[:batch]), batch, args.repeats, args.min_configs)
            for (method, call, dtype), v in us.items():
                res.add({"robot": name, "batch": batch, "method": method, "call": call, "dtype": dtype,
                         "us_per_config": v})
            print(name, batch, "  ".join(f"{m}/{c}/{d}: {v:.2f}" for (m, c, d), v in us.items()), flush=True)
    if chain is not None:
        import pinocchio
        res.extra["pinocchio_version"] = pinocchio.__version__
    out = res.write(Path(args.out) / "fk_speed.json")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
