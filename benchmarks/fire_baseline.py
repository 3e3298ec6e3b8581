"""The flow_matching baseline for ``fire_budget.py``: Riemannian flow matching on S2 written on Meta's
``flow_matching`` package (its ``GeodesicProbPath`` with the conditional-OT scheduler and its ``Sphere``), a
512 x 5 MLP, batch 1024, Adam lr 5e-4 (constant, as in the package's examples), no EMA.

Benchmark-only: ``flow_matching`` is under a non-commercial licence and is never a posegen dependency
(``pip install flow_matching``; without it the baseline is skipped with a message). Its likelihood is scored
with the same evaluator as posegen's rows (the field ``proju(x, MLP(x, t))`` integrated backwards with
posegen's rk4 and the exact divergence, the trace of its 3 x 3 coordinate Jacobian), so the two curves
differ only in training. Run through ``fire_budget.py --baseline`` (side by side) or ``--baseline-only``.
"""

from __future__ import annotations

import math
from typing import Any, Dict

import torch
from budget_clock import Clock, checkpoint_hook, score, solver_check
from torch import nn

UNAVAILABLE = "the flow_matching package is not installed (pip install flow_matching; benchmark-only, non-commercial licence)"
SETTINGS = dict(hidden=512, depth=5, batch_size=1024, lr=5e-4)


def available() -> bool:
    try:
        import flow_matching  # noqa: F401
    except ImportError:
        return False
    return True


def settings_for(args) -> Dict[str, Any]:
    minutes = args.baseline_minutes or args.minutes
    s = dict(SETTINGS, minutes=minutes, checkpoints=[m for m in args.checkpoints if m <= minutes + 1e-9],
             clock=args.clock,
             seed=args.seed, eval_steps=args.eval_steps, eval_points=args.eval_points,
             check_points=args.check_points)
    if args.quick:
        s.update(hidden=32, depth=2, batch_size=64)
    return s


class MLP(nn.Module):
    """The flow_matching examples' S2 model: an MLP on (x, t), projected to the tangent space."""

    def __init__(self, hidden: int, depth: int):
        super().__init__()
        dims = [4] + [hidden] * depth
        layers = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*layers, nn.Linear(hidden, 3))

    def forward(self, x, t):
        x = x / x.norm(dim=-1, keepdim=True)
        t = torch.as_tensor(t, dtype=x.dtype).expand(x.shape[:-1]).unsqueeze(-1)
        v = self.net(torch.cat([x, t], -1))
        return v - (v * x).sum(-1, keepdim=True) * x


def log_prob(model: MLP, x: torch.Tensor, steps: int = 32, method: str = "rk4", **solver) -> torch.Tensor:
    """``log p(x)`` w.r.t. the area of S2: the ODE from t=1 to 0 with the exact divergence (posegen's integrator)."""
    from posegen.manifolds import Product
    from posegen.manifolds.sphere import Sphere
    from posegen.solvers.ode import integrate

    M = Product(Sphere(2))

    def field(t, z):
        def f(y, tt):
            return model(y, tt)

        with torch.enable_grad():
            jac = torch.func.vmap(torch.func.jacfwd(f), in_dims=(0, 0))(z, t.expand(z.shape[0]))
        v = model(z, t)
        return v, jac.diagonal(dim1=-2, dim2=-1).sum(-1, keepdim=True)

    with torch.no_grad():
        z0, e0 = integrate(field, x, M, 1.0, 0.0, extra=x.new_zeros(x.shape[0], 1), method=method, steps=steps,
                           **solver)
    return -math.log(4 * math.pi) + e0.squeeze(-1)


def run_baseline(s: Dict[str, Any]) -> Dict[str, Any]:
    """Train the baseline for ``s['minutes']`` and score it at ``s['checkpoints']`` (like fire_budget's rows)."""
    import copy

    from flow_matching.path import GeodesicProbPath
    from flow_matching.path.scheduler import CondOTScheduler
    from flow_matching.utils.manifolds import Sphere as FMSphere

    from common import set_threads
    from posegen.data import earth_splits

    set_threads(1)
    torch.manual_seed(s["seed"])
    train, _, test = earth_splits("fire", s["seed"])
    test_points = test.points[: s["eval_points"]] if s["eval_points"] else test.points
    data = train.points.float()
    model = MLP(s["hidden"], s["depth"])
    opt = torch.optim.Adam(model.parameters(), lr=s["lr"])
    path = GeodesicProbPath(scheduler=CondOTScheduler(), manifold=FMSphere())
    solver = {"method": "rk4", "steps": s["eval_steps"]}
    clock = Clock(s["clock"])
    checkpoints = []
    last = {}

    def evaluate():
        m = copy.deepcopy(model).eval()
        last["model"] = m
        return score(lambda x: log_prob(m, x, **solver), test_points)

    hook = checkpoint_hook(clock, [float(m) for m in s["checkpoints"]], evaluate, checkpoints)
    g = torch.Generator().manual_seed(s["seed"])
    step = 0
    clock.start()
    while clock() < 60.0 * s["minutes"]:
        x1 = data[torch.randint(data.shape[0], (s["batch_size"],), generator=g)]
        x0 = torch.randn(x1.shape, generator=g)
        x0 = x0 / x0.norm(dim=-1, keepdim=True)
        t = torch.rand(x1.shape[0], generator=g)
        ps = path.sample(t=t, x_0=x0, x_1=x1)
        loss = (model(ps.x_t, t) - ps.dx_t).pow(2).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        hook(step)
    hook(step)
    row = {"model": "flow_matching", "settings": {k: s[k] for k in ("hidden", "depth", "batch_size", "lr")},
           "objective": "rfm (flow_matching GeodesicProbPath, CondOT)", "steps_done": step,
           "n_train": int(data.shape[0]), "n_test": int(test_points.shape[0]), "checkpoints": checkpoints}
    if s["check_points"] and "model" in last:
        row["solver_check"] = solver_check(lambda x, **kw: log_prob(last["model"], x, **kw), test_points, solver,
                                           s["check_points"])
    try:
        from importlib.metadata import version

        row["flow_matching_version"] = version("flow_matching")
    except Exception:
        pass
    return row
