"""Speed: training steps/s per objective, CNFM's divergence cost, sampling and likelihood throughput.

Sections (each a list of rows in the JSON):

* ``train``: one optimiser step (loss, backward, AdamW) per objective at fixed batch and width, on S2
  (data: the fire training split, the largest earth set) and on R3 x T7 x S3 (data: base samples; CNFM's
  cost depends on the number of mixture components, not on their values), steps/s;
* ``cnfm_breakdown``: what a CNFM step spends beyond an RFM step: the velocity alone, velocity + exact
  divergence, velocity + Hutchinson divergence (each forward + backward), and the mixture-path targets;
* ``sampling``: poses/s at fixed NFE for the R3 x T7 x S3 and R3 x T8 x S3^6 flows (and S2), against the
  bare network's forward time for the same NFE (the limit any solver can reach) and against
  flow_matching's ``RiemannianODESolver`` (Meta; CC BY-NC, benchmark-only, never a dependency) on the same
  network, method and step count;
* ``likelihood``: log_prob points/s with the exact divergence vs Hutchinson, and vs NFE, with the error
  against a dopri5 reference on a briefly trained S2 model.

Weights do not change the cost of fixed-step solvers, so the timing networks are untrained (PoseFlow's
default width 256, depth 4). All timings are medians of repeated calls after a warm-up.

    python benchmarks/speed.py --quick --out benchmarks/results/quick/speed.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import Result, Timer, csv_list, set_threads, timeit  # noqa: E402

QUICK = dict(batch_size=256, hidden=256, depth=4, repeat=3, n_sample=512, nfe_steps="2,4,8", sample_steps=4,
             n_logp=128, fit_steps=100, cnfm_components="256,all", manifolds="S2,R3 x T7 x S3,R3 x T8 x S3^6")
FULL = dict(batch_size=256, hidden=256, depth=4, repeat=7, n_sample=4096, nfe_steps="1,2,4,8,16,32",
            sample_steps=8, n_logp=256, fit_steps=1500, cnfm_components="256,1024,all",
            manifolds="S2,R3 x T7 x S3,R3 x T8 x S3^6")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    for name, typ in (("batch-size", int), ("hidden", int), ("depth", int), ("repeat", int), ("n-sample", int),
                      ("nfe-steps", str), ("sample-steps", int), ("n-logp", int), ("fit-steps", int),
                      ("cnfm-components", str), ("manifolds", str)):
        p.add_argument("--" + name, type=typ)
    p.add_argument("--sections", default="train,cnfm_breakdown,sampling,likelihood")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/speed.json"))
    args = p.parse_args(argv)
    for k, v in (QUICK if args.quick else FULL).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    args.nfe_steps = csv_list(args.nfe_steps, int)
    args.cnfm_components = [None if c == "all" else int(c) for c in csv_list(args.cnfm_components)]
    args.manifolds = csv_list(args.manifolds)
    args.sections = csv_list(args.sections)
    return args


def _data(spec: str, n: int = 4096):
    """Training points for a speed run: the fire split on S2, base samples elsewhere (user coordinates)."""
    if spec == "S2":
        from posegen.data import earth_splits

        return earth_splits("fire", 0)[0].points
    import posegen.manifolds as pm

    return pm.parse(spec).sample_base(n, generator=torch.Generator().manual_seed(0))


def _flow(spec, args, param="cnf"):
    from posegen import PoseFlow

    torch.manual_seed(0)
    flow = PoseFlow(spec, hidden=args.hidden, depth=args.depth, parametrization=param)
    # posegen zero-initialises output layers (an untrained field is 0): give them small random weights so
    # that solvers move the points and the flow_matching endpoint comparison means something
    with torch.no_grad():
        for p in flow.parameters():
            if p.abs().max() == 0:
                p.normal_(0.0, 0.05)
    return flow


def _step_fn(flow, objective, data, B, g):
    """A closure doing one full optimiser step of ``objective`` on a fixed batch."""
    opt = torch.optim.AdamW(flow.parameters(), lr=1e-4)
    z = flow.to_internal(data.to(flow.dtype))
    objective.setup(flow, z)
    x1 = z[:B]

    def step():
        opt.zero_grad(set_to_none=True)
        objective.loss(flow, x1, generator=g).backward()
        opt.step()

    return step


def bench_train(args, res):
    from posegen.objectives import make_objective

    for spec in args.manifolds:
        data = _data(spec)
        cases = [("rfm", {}), ("interpolant", {})]
        cases += [("cnfm", {"max_components": c} if c else {}) for c in args.cnfm_components]
        if spec in ("S2",) or "R" not in spec:
            cases.append(("moser", {}))
        for name, opts in cases:
            flow = _flow(spec, args, "moser" if name == "moser" else "cnf")
            flow.fit_standardization(data)
            g = torch.Generator().manual_seed(0)
            t = timeit(_step_fn(flow, make_objective(name, **opts), data, args.batch_size, g), repeat=args.repeat)
            row = {"manifold": spec, "objective": name, "options": opts, "batch_size": args.batch_size,
                   "hidden": args.hidden, "depth": args.depth, "n_data": int(data.shape[0]),
                   "step_ms": t["median_s"] * 1e3, "steps_per_s": 1.0 / t["median_s"]}
            res.add(("train", row))
            print(f"train {spec:>14} {name:>11} {opts}: {row['steps_per_s']:.1f} steps/s", flush=True)


def bench_cnfm_breakdown(args, res):
    from posegen.objectives import make_objective

    for spec in args.manifolds:
        data = _data(spec)
        flow = _flow(spec, args)
        flow.fit_standardization(data)
        z = flow.to_internal(data.to(flow.dtype))
        B = args.batch_size
        x = z[:B]
        tt = torch.rand(B, generator=torch.Generator().manual_seed(0))
        g = torch.Generator().manual_seed(0)
        parts = {}
        parts["velocity_fwd_bwd"] = timeit(lambda: flow.velocity(tt, x).sum().backward(), repeat=args.repeat)
        for m in ("exact", "hutchinson"):
            parts[f"velocity_div_{m}_fwd_bwd"] = timeit(
                lambda m=m: sum(v.sum() for v in flow.velocity_and_div(tt, x, method=m, generator=g)).backward(),
                repeat=args.repeat)
        for c in args.cnfm_components:
            obj = make_objective("cnfm", **({"max_components": c} if c else {}))
            obj.setup(flow, z)
            parts[f"targets_components_{c or 'all'}"] = timeit(
                lambda: obj.path.log_prob_dt_grad(x, tt, generator=g), repeat=args.repeat)
            parts[f"cnfm_loss_fwd_bwd_components_{c or 'all'}"] = timeit(
                lambda: obj.loss(flow, x, generator=g).backward(), repeat=args.repeat)
        rfm = make_objective("rfm")
        rfm.setup(flow, z)
        parts["rfm_loss_fwd_bwd"] = timeit(lambda: rfm.loss(flow, x, generator=g).backward(), repeat=args.repeat)
        row = {"manifold": spec, "batch_size": B, "hidden": args.hidden, "depth": args.depth,
               "n_data": int(z.shape[0]), "coord_dim": flow.manifold.coord_dim,
               "ms": {k: v["median_s"] * 1e3 for k, v in parts.items()}}
        ms = row["ms"]
        row["div_exact_over_velocity"] = ms["velocity_div_exact_fwd_bwd"] / ms["velocity_fwd_bwd"]
        row["div_hutchinson_over_velocity"] = ms["velocity_div_hutchinson_fwd_bwd"] / ms["velocity_fwd_bwd"]
        res.add(("cnfm_breakdown", row))
        print(f"cnfm breakdown {spec}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()), flush=True)


class _FMProduct:
    """posegen's product geometry in flow_matching's Manifold interface (built lazily: optional import)."""

    @staticmethod
    def make(manifold):
        from flow_matching.utils.manifolds import Manifold

        class PosegenProduct(Manifold):
            def __init__(self, M):
                super().__init__()
                self.M = M

            def expmap(self, x, u):
                return self.M.expmap(x, u)

            def logmap(self, x, y):
                return self.M.logmap(x, y)

            def projx(self, x):
                return self.M.projx(x)

            def proju(self, x, u):
                return self.M.proju(x, u)

        return PosegenProduct(manifold)


def bench_sampling(args, res):
    from posegen.solvers.ode import integrate

    try:
        import flow_matching
        from flow_matching.solver import RiemannianODESolver
        from flow_matching.utils.manifolds import Sphere as FMSphere
        fm_version = flow_matching.__version__
    except ImportError as e:  # benchmark-only comparison: report, do not fail
        RiemannianODESolver, fm_version = None, f"not installed ({e})"
    res.extra["flow_matching"] = fm_version
    n, K = args.n_sample, args.sample_steps
    for spec in args.manifolds:
        flow = _flow(spec, args).eval()
        M = flow.manifold
        z0 = M.sample_base(n, generator=torch.Generator().manual_seed(0))
        for method, stages in (("rk4", 4), ("euler", 1)):
            nfe = 4 * K  # the same NFE for both methods: K rk4 steps or 4K Euler steps
            steps = nfe // stages
            field = lambda t, z: (flow.net(t, z), None)  # noqa: E731
            with torch.no_grad():
                t_ours = timeit(lambda: integrate(field, z0, M, 0.0, 1.0, method=method, steps=steps),
                                repeat=args.repeat)
                t_sample = timeit(lambda: flow.sample(n, seed=0, method=method, steps=steps), repeat=args.repeat)
                tb = torch.rand(n)
                t_net = timeit(lambda: [flow.net(tb, z0) for _ in range(nfe)], repeat=args.repeat)
            row = {"manifold": spec, "method": method, "steps": steps, "nfe": nfe, "n": n, "hidden": args.hidden,
                   "depth": args.depth, "posegen_solver_s": t_ours["median_s"], "posegen_sample_s": t_sample["median_s"],
                   "bare_network_s": t_net["median_s"],
                   "poses_per_s": n / t_sample["median_s"],
                   "solver_over_network": t_ours["median_s"] / t_net["median_s"],
                   "sample_over_network": t_sample["median_s"] / t_net["median_s"]}
            if RiemannianODESolver is not None:
                fm_M = FMSphere() if spec == "S2" else _FMProduct.make(M)
                row["flow_matching_manifold"] = "flow_matching Sphere" if spec == "S2" else "posegen product via adapter"

                class Wrapped(torch.nn.Module):
                    def forward(self, x, t, **extras):
                        return flow.net(t.expand(x.shape[0]).to(x), x)

                solver = RiemannianODESolver(fm_M, Wrapped())
                with torch.no_grad():
                    grid = torch.linspace(0.0, 1.0, steps + 1)  # step_size=None: steps from the grid
                    t_fm = timeit(lambda: solver.sample(z0, step_size=None, time_grid=grid, method=method),
                                  repeat=args.repeat)
                    x_fm = solver.sample(z0, step_size=None, time_grid=grid, method=method)
                    x_pg = integrate(field, z0, M, 0.0, 1.0, method=method, steps=steps)
                row["flow_matching_s"] = t_fm["median_s"]
                row["posegen_over_flow_matching"] = t_ours["median_s"] / t_fm["median_s"]
                # rk4 differs (flow_matching: the 3/8 rule; posegen: classic RK4), so endpoints differ at O(h^5)
                row["max_endpoint_diff"] = float(M.dist(x_fm, x_pg).max())
            res.add(("sampling", row))
            print(f"sampling {spec:>14} {method} NFE {nfe}: {row['poses_per_s']:.0f} poses/s, "
                  f"x{row['solver_over_network']:.2f} network, "
                  f"x{row.get('posegen_over_flow_matching', float('nan')):.2f} flow_matching", flush=True)


def bench_likelihood(args, res):
    from posegen.data import earth_splits
    from posegen.training import train

    n = args.n_logp
    for spec in args.manifolds:
        flow = _flow(spec, args).eval()
        x = flow.sample(n, seed=0, method="euler", steps=1)
        for div in ("exact", "hutchinson"):
            for K in args.nfe_steps:
                t = timeit(lambda: flow.log_prob(x, method="rk4", steps=K, divergence=div, seed=0),
                           repeat=max(1, args.repeat // 2))
                row = {"manifold": spec, "divergence": div, "method": "rk4", "steps": K, "nfe": 4 * K, "n": n,
                       "points_per_s": n / t["median_s"], "seconds": t["median_s"]}
                res.add(("likelihood", row))
            print(f"log_prob {spec:>14} {div}: " + ", ".join(
                f"NFE {r['nfe']} {r['points_per_s']:.0f}/s" for k, r in res.rows
                if k == "likelihood" and r["manifold"] == spec and r["divergence"] == div), flush=True)
    # accuracy vs NFE on a trained model (RFM on the volcano split 0, width 64)
    tr, va, te = earth_splits("volcano", 0)
    from posegen import PoseFlow

    torch.manual_seed(0)
    flow = PoseFlow("S2", hidden=64, depth=3)
    with Timer() as tt:
        flow = train(flow, tr, "rfm", steps=args.fit_steps, batch_size=256, seed=0, progress=False,
                     device="cpu").flow.eval()
    ref = flow.log_prob(te.points, method="dopri5", atol=1e-7, rtol=1e-7)
    for div in ("exact", "hutchinson"):
        for K in args.nfe_steps:
            lp = flow.log_prob(te.points, method="rk4", steps=K, divergence=div, seed=0)
            res.add(("likelihood_accuracy", {
                "manifold": "S2", "model": f"rfm volcano split 0, {args.fit_steps} steps, width 64",
                "divergence": div, "steps": K, "nfe": 4 * K, "n": int(te.points.shape[0]),
                "mean_abs_err": float((lp - ref).abs().mean()), "max_abs_err": float((lp - ref).abs().max()),
                "nll_err": float((ref - lp).mean()), "fit_seconds": tt.s}))


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    res = Result("speed", {k: v for k, v in vars(args).items() if k != "out"})
    # res.rows holds (section, row) pairs until written; _write groups them into "sections"
    for section in args.sections:
        {"train": bench_train, "cnfm_breakdown": bench_cnfm_breakdown, "sampling": bench_sampling,
         "likelihood": bench_likelihood}[section](args, res)
        _write(res, args.out)
    path = _write(res, args.out)
    print(f"wrote {path}")
    return path


def _write(res, out):
    pairs = list(res.rows)
    sections = {}
    for k, r in pairs:
        sections.setdefault(k, []).append(r)
    saved = res.rows
    res.rows = []
    res.extra["sections"] = sections
    path = res.write(out)
    res.rows = saved
    return path


if __name__ == "__main__":
    main()
