"""IK distributions on IKFlow's protocol: posegen's IKSampler (raw and DLS-refined) against DLS from random seeds.

    # train (one core), saving snapshots for the error-vs-time curve
    OMP_NUM_THREADS=1 python benchmarks/ik.py train --robot panda --minutes 20 --snapshots 2,5,10,20 \\
        --run runs/ik_bench
    # evaluate the last snapshot fully, the others for the curve; JSON to benchmarks/results/full/ik_panda.json
    OMP_NUM_THREADS=1 python benchmarks/ik.py eval --robot panda --run runs/ik_bench
    # posegen refined vs DLS and Robotics Toolbox's C++ ik_LM from random starts (benchmarks/ik_speed.py)
    OMP_NUM_THREADS=1 python benchmarks/ik.py speed --robot panda --checkpoint runs/ik_bench/panda_2min.pt
    # solve_ik's exact share after 5-40 iterations per start (draws, uniform) and step rule (benchmarks/ik_speed.py)
    OMP_NUM_THREADS=1 python benchmarks/ik.py convergence --robot ur5e
    # the markdown sections (printed); RESULTS.md gets them from make_results.py (markdown_section)
    python benchmarks/ik.py markdown --robots panda

Protocol (IKFlow, Ames et al. 2022): ``--targets`` (500) end-effector poses from joints drawn uniformly inside
the limits with a seed of their own (``--target-seed``; training draws from the stream of ``--seed``, so the
targets are not training samples), ``--per-target`` (50) solutions each.

* raw samples: position error (mm) and rotation error (deg, ``atan2`` form) mean / median / p95; share inside
  the limits (the joint manifold's Interval chart puts every sample inside by construction; measured, not
  assumed); wall time for 100 and 1000 solutions of one target (median of repeats, one thread).
* refined: what ``IKSampler.sample(refine=True)`` returns with its defaults, at 1 mm / 0.01 rad and 0.1 mm /
  0.001 rad; time to 1000 successful solutions (sampling + refinement + retries, over the successes, times
  1000), in wall time and in this thread's CPU time (the machine is shared: CPU time is the steadier figure).
* diversity per target among successful solutions: mean pairwise joint distance (rad, L2) and the number of
  clusters (connected components at ``--cluster-eps`` rad); also at sampling temperature 1.
* baseline: the same ``solve_ik`` from uniform random starts, same targets, at each of ``--baseline-iters``
  iteration caps; its row is its fastest cap (CPU time per 1000 successes), its diversity that of the largest.
* curve: raw errors of the snapshots against training time.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Result, read_json, set_threads  # noqa: E402
from ik_protocol import diversity, targets_for  # noqa: E402
from ik_speed import add_convergence_parser, add_speed_parser, cmd_convergence, cmd_speed  # noqa: E402

from posegen.robots import load, solve_ik  # noqa: E402
from posegen.samplers import IKSampler  # noqa: E402
from posegen.samplers.ik import REFINE_DEFAULTS, REFINE_SAMPLE_SOLVER, REFINE_TEMPERATURE  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "full"
DEG = 180.0 / torch.pi

# published rows (not measured here; hardware as reported by the papers, GPU)
PUBLISHED = {
    "panda": [
        {"model": "IKFlow full (Ames et al. 2022)", "pos_mm": 6.83, "rot_deg": 2.28, "ms_100": 10.05},
        {"model": "IKFlow lite (Ames et al. 2022)", "pos_mm": 14.2, "rot_deg": 6.32, "ms_100": None},
    ],
}
# measured earlier on this project's machine (issue 13), not in the same run: a generic conditional flow
EARLIER = {
    "panda": {"model": "generic PoseFlow T7 512 x 5, quaternion condition, RFM 10 min (issue 13, earlier run)",
              "pos": "34.1 / 24.2 / 92.1", "rot": "19.1 / — / —", "inside": "78.2 %", "ms_100": "364"},
}
PUBLISHED_REFINED = "IKFlow + LM (Ames et al. 2022): 99.9-100 % exact (1 mm, 0.01 rad), ~0.19 s per 1000 solutions"


def stats(x: torch.Tensor, scale: float):
    x = x.double().flatten() * scale
    return {"mean": float(x.mean()), "median": float(x.median()), "p95": float(x.quantile(0.95))}


def timed(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


# ------------------------------------------------------------------------------------------- train
def cmd_train(args):
    set_threads(args.threads)
    robot = load(args.robot)
    run = Path(args.run)
    run.mkdir(parents=True, exist_ok=True)
    marks = sorted(float(m) for m in args.snapshots.split(",")) if args.snapshots else []
    saved = []

    def callback(info):
        while marks and info["elapsed_s"] >= 60 * marks[0] and marks[0] < args.minutes:
            m = marks.pop(0)
            snap = info["snapshot"]()
            snap.training.update(steps=info["step"], seconds=info["elapsed_s"],
                                 samples_seen=info["step"] * args.batch_size)
            path = snap.save(run / f"{args.robot}_{m:g}min.pt")
            saved.append(str(path))
            print(f"snapshot {path} at step {info['step']} ({info['elapsed_s']:.0f} s)", flush=True)

    ik = IKSampler(robot, hidden=args.hidden, depth=args.depth, conditioning=args.conditioning,
                   full_turns=args.full_turns)
    ik.fit(steps=args.steps, max_minutes=args.minutes, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
           time_sampling=args.time_sampling,
           device="cpu", log_every=50, callback=callback, verbose=args.verbose)
    minutes = args.minutes if args.steps is None else round(ik.training["seconds"] / 60, 1)
    path = ik.save(run / f"{args.robot}_{minutes:g}min.pt")
    print(f"final {path}: {ik.training['steps']} steps, {ik.training['seconds']:.0f} s", flush=True)


# ------------------------------------------------------------------------------------------- eval
def raw_eval(ik, targets, per, steps=None, seed=0, **sample_options):
    out = ik.sample(targets, per, seed=seed, steps=steps, **sample_options)
    pe, re = ik.errors(out["joints"].double(), targets)
    inside = ik.robot.within_limits(out["joints"].double())
    return out["joints"], {"pos_mm": stats(pe, 1e3), "rot_deg": stats(re, DEG),
                           "inside_limits": float(inside.double().mean())}


TOLERANCES = (("1mm_0.01rad", (1e-3, 1e-2)), ("0.1mm_0.001rad", (1e-4, 1e-3)))


def refined_stats(robot, solve, eps):
    """``solve(pos_tol, rot_tol) -> (joints (T, n, dof), success (T, n), extra)`` at each of :data:`TOLERANCES`:
    ``(stats per tolerance, diversity of the 1 mm / 0.01 rad solutions)``; ``extra`` joins each row's stats."""
    stats, div = {}, None
    for name, (pt, rt) in TOLERANCES:
        joints, success, extra = solve(pt, rt)
        stats[name] = {"success": float(success.double().mean()),
                       "targets_with_any": float(success.any(1).double().mean()),
                       "inside_limits": float(robot.within_limits(joints).double().mean()), **extra}
        if div is None:
            div = diversity(joints, success, eps)
    return stats, div


def time_to_1000(solves, targets, chunk_targets=20, per=50, chunks=10):
    """Time to 1000 successful solutions of each of ``solves`` (``{name: solve}``, ``solve(part (t, 7), per) ->
    success (t, per)``) on ``chunks`` batches of ``chunk_targets x per`` solutions (other targets each time):
    total time over total successes, times 1000 (s), in wall time and in this thread's CPU time
    (``cpu_s_per_1000_successes``; on a shared machine the wall time swings with other jobs' load, the CPU time
    much less). The solves take turns chunk by chunk, so a change of the load hits all of them alike.
    Returns ``{name: timing}``."""
    acc = {k: [0.0, 0.0, 0] for k in solves}
    chunk_targets = min(chunk_targets, targets.shape[0])
    chunks = max(1, min(chunks, targets.shape[0] // chunk_targets))
    for c in range(chunks):
        part = targets[c * chunk_targets:(c + 1) * chunk_targets]
        for name, solve in solves.items():
            t0, c0 = time.perf_counter(), time.thread_time()
            success = solve(part, per)
            acc[name][0] += time.perf_counter() - t0
            acc[name][1] += time.thread_time() - c0
            acc[name][2] += int(success.sum())
    return {name: {"seconds": dt, "cpu_seconds": cpu, "solutions": chunks * chunk_targets * per, "successes": ok,
                   "s_per_1000_successes": dt * 1000 / ok if ok else None,
                   "cpu_s_per_1000_successes": cpu * 1000 / ok if ok else None}
            for name, (dt, cpu, ok) in acc.items()}


def cmd_eval(args):
    set_threads(args.threads)
    robot = load(args.robot)
    run = Path(args.run)
    snaps = sorted(run.glob(f"{args.robot}_*min.pt"), key=lambda p: float(p.stem.split("_")[-1][:-3]))
    if not snaps:
        raise SystemExit(f"no {args.robot}_*min.pt in {run}: run the train step first")
    res = Result("ik", vars(args))
    targets = targets_for(robot, args.targets, args.target_seed)
    final = IKSampler.load(snaps[-1])
    tr = {k: v for k, v in final.training.items() if k != "history"}
    res.extra["training"] = {**tr, "checkpoint": str(snaps[-1].name), "config": final.flow.config}
    row = {"robot": args.robot, "model": "posegen IKSampler", "train_seconds": tr.get("seconds"),
           "train_steps": tr.get("steps"), "samples_seen": tr.get("samples_seen")}

    # raw samples
    t0 = time.perf_counter()
    joints, raw = raw_eval(final, targets, args.per_target, seed=1)
    row["raw"] = raw
    row["raw_sample_seconds_all"] = time.perf_counter() - t0
    one = targets[:1]
    final.sample(one, 10, seed=0)  # warm-up
    row["ms_100"] = 1e3 * timed(lambda: final.sample(one, 100, seed=0))
    row["ms_1000"] = 1e3 * timed(lambda: final.sample(one, 1000, seed=0))
    print("raw", json.dumps(row["raw"]), f"100: {row['ms_100']:.1f} ms", flush=True)

    # ODE steps at sampling (first 100 targets)
    row["ode_steps"] = []
    for steps in args.ode_steps:
        _, r = raw_eval(final, targets[:100], args.per_target, steps=steps, seed=1)
        ms = 1e3 * timed(lambda: final.sample(one, 100, seed=0, steps=steps))
        row["ode_steps"].append({"method": "rk4", "steps": steps, **r, "ms_100": ms})
        print("steps", steps, json.dumps(r), f"{ms:.1f} ms", flush=True)

    # raw samples ranked by the model's density (first 100 targets): the most probable n of (1 + spare) n draws,
    # after the same targets and seed without a ranking (spare 0), timed alike
    row["density_rank"] = []
    for spare in [0.0] + args.density_spares if args.density_spares else []:
        c = time.thread_time()
        _, r = raw_eval(final, targets[:100], args.per_target, seed=1,
                        **({"rank": "density", "spare": spare} if spare else {}))
        cpu = time.thread_time() - c
        row["density_rank"].append({"draws_per_solution": 1 + spare, **r,
                                    "cpu_s_per_1000": 1e3 * cpu / (100 * args.per_target)})
        print("density rank", 1 + spare, json.dumps(r), flush=True)

    # refined: what sample(refine=True) returns with its defaults
    sig = inspect.signature(IKSampler.sample).parameters
    row["refine_defaults"] = {"solver": REFINE_SAMPLE_SOLVER, "temperature": REFINE_TEMPERATURE,
                              **{k: sig[k].default for k in ("max_iters", "retries")},
                              **REFINE_DEFAULTS, **final.refine_options}
    def sampler_solve(pt, rt):
        out = final.sample(targets, args.per_target, seed=1, refine=True, pos_tol=pt, rot_tol=rt)
        return out["joints"], out["success"], {}

    row["refined"], row["diversity"] = refined_stats(robot, sampler_solve, args.cluster_eps)
    print("refined", json.dumps(row["refined"]), flush=True)
    # the same at temperature 1 (the model's own density): what the wider draw buys in spread
    out = final.sample(targets, args.per_target, seed=1, refine=True, temperature=1.0)
    row["temperature_1"] = {"success": float(out["success"].double().mean()),
                            "diversity": diversity(out["joints"], out["success"], args.cluster_eps)}
    print("temperature 1", json.dumps(row["temperature_1"]), flush=True)

    # baseline: DLS from uniform random starts, at several iteration caps (its time to 1000 successes is best
    # at some cap: more iterations save stuck rows but cost every row)
    g = torch.Generator().manual_seed(args.target_seed + 1)
    starts = robot.manifold.sample_base((args.targets, args.per_target), generator=g, dtype=torch.float64)
    base = {"robot": args.robot, "model": "DLS from uniform random starts", "by_max_iters": []}
    for it in args.baseline_iters:
        def dls_solve(pt, rt, it=it):
            r = solve_ik(robot, targets, starts, pos_tol=pt, rot_tol=rt, max_iters=it)
            return r.joints, r.success, {"mean_iterations": float(r.iterations.double().mean())}

        stats_, div = refined_stats(robot, dls_solve, args.cluster_eps)
        base["by_max_iters"].append({"max_iters": it, "refined": stats_, "diversity": div})
        print("baseline", it, json.dumps(stats_["1mm_0.01rad"]), flush=True)
    # time to 1000 exact solutions: the sampler and each baseline cap in turns, chunk by chunk
    gb = torch.Generator().manual_seed(args.target_seed + 2)

    def dls(it):
        return lambda part, per: solve_ik(robot, part, robot.manifold.sample_base(
            (part.shape[0], per), generator=gb, dtype=torch.float64), max_iters=it).success

    solves = {"posegen": lambda part, per: final.sample(part, per, seed=2, refine=True)["success"]}
    solves.update({f"dls_{b['max_iters']}": dls(b["max_iters"]) for b in base["by_max_iters"]})
    times = time_to_1000(solves, targets)
    row["time_to_1000"] = times["posegen"]
    for b in base["by_max_iters"]:
        b["time_to_1000"] = times[f"dls_{b['max_iters']}"]
    print("time to 1000", json.dumps(times), flush=True)
    # the baseline's row: its fastest cap (CPU time per 1000 successes), and the diversity at the largest cap
    best = min(base["by_max_iters"], key=lambda b: b["time_to_1000"]["cpu_s_per_1000_successes"] or float("inf"))
    base.update(refined=best["refined"], time_to_1000=best["time_to_1000"], max_iters=best["max_iters"],
                diversity=base["by_max_iters"][-1]["diversity"])
    res.add(row)
    res.add(base)

    # curve: raw error against training time
    curve = []
    for p in snaps:
        ik = IKSampler.load(p)
        _, r = raw_eval(ik, targets[:100], args.per_target, seed=1)
        curve.append({"checkpoint": p.name, "train_seconds": ik.training.get("seconds"),
                      "train_steps": ik.training.get("steps"), **r})
        print("curve", p.name, json.dumps(r), flush=True)
    res.extra["curve"] = curve
    out = res.write(Path(args.out) / f"ik_{args.robot}.json")
    print(f"wrote {out}")


# ------------------------------------------------------------------------------------------- markdown
def _f(x, fmt="{:.1f}"):
    return "—" if x is None else fmt.format(x)


def section(d) -> str:
    m, a, tr = d["machine"], d["args"], d["training"]
    flow, base = d["results"][0], d["results"][1]
    robot = flow["robot"]
    cfg = tr["config"]
    lines = [f"### {robot}", "",
             f"*Source: `benchmarks/results/full/ik_{robot}.json`; machine: {m['cpu']}, {m['cores']} cores "
             f"(2-core CPU, "
             f"no GPU), {m['torch_threads']} torch thread, load average at start "
             f"{'/'.join(f'{v:.1f}' for v in m['load_avg_1_5_15'] or [])}; torch {m['torch']}; commit "
             f"{(m['commit'] or '?')[:10]}{' (+ uncommitted changes)' if m.get('dirty') else ''}; evaluation "
             f"{d['duration_s'] / 60:.1f} min.*", "",
             f"Model: conditional RFM flow on the joint box (Interval chart), width {cfg['hidden']} x depth "
             f"{cfg['depth']}, {cfg['conditioning']} conditioning on position + rotation matrix; trained "
             f"{tr['seconds'] / 60:.1f} min on one CPU thread, {tr['steps']} steps of batch {tr['batch_size']} "
             f"({tr['samples_seen'] / 1e6:.2f} M fresh FK samples of uniform joints), lr {tr['lr']:g} cosine, "
             f"EMA {tr['ema_decay']}. Raw sampling: {cfg['solver']['method']} x {cfg['solver']['steps']} steps. "
             f"{a['targets']} targets (seed {a['target_seed']}) x {a['per_target']} solutions.", "",
             "| model | pos. error mean / median / p95 (mm) | rot. error mean / median / p95 (deg) | inside limits "
             "| 100 solutions (ms) | 1000 solutions (ms) |", "|---|---|---|---|---|---|"]
    r = flow["raw"]
    lines.append(f"| **posegen IKSampler (raw)** | {r['pos_mm']['mean']:.1f} / {r['pos_mm']['median']:.1f} / "
                 f"{r['pos_mm']['p95']:.1f} | {r['rot_deg']['mean']:.1f} / {r['rot_deg']['median']:.1f} / "
                 f"{r['rot_deg']['p95']:.1f} | {100 * r['inside_limits']:.1f} % | {flow['ms_100']:.0f} | "
                 f"{flow['ms_1000']:.0f} |")
    if robot in EARLIER:
        e = EARLIER[robot]
        lines.append(f"| {e['model']} | {e['pos']} | {e['rot']} | {e['inside']} | {e['ms_100']} | — |")
    for p in PUBLISHED.get(robot, []):
        lines.append(f"| {p['model']} (published, GPU) | {p['pos_mm']} / — / — | {p['rot_deg']} / — / — "
                     f"| — | "
                     f"{_f(p['ms_100'], '{:.2f}')} | — |")
    rd = flow.get("refine_defaults", {})
    sol = rd.get("solver", {})
    lines += ["", f"Refined: `IKSampler.sample(refine=True)` with its defaults ({sol.get('method', '?')} x "
              f"{sol.get('steps', '?')} draws at temperature {rd.get('temperature', '?')}, "
              f"{100 * rd.get('spare', 0):.0f} % spare draws, {rd.get('max_iters', '?')} DLS iterations, up to "
              f"{rd.get('retries', '?')} rounds of {rd.get('retry_draws', '?')} fresh draws for rows still failing), "
              "against DLS (`solve_ik`, the "
              f"same solver) from uniform random starts at its fastest iteration cap of "
              f"{', '.join(str(b['max_iters']) for b in base.get('by_max_iters', []))}; the sampler and every "
              "baseline setting are timed in turns, batch by batch (20 targets x 50 solutions), so the machine's "
              "load hits them alike.", "",
              "| refined | success 1 mm / 0.01 rad | success 0.1 mm / 0.001 rad | targets with ≥1 success "
              "| inside limits | time to 1000 successes, CPU / wall (s) | mean pairwise joint distance (rad) "
              f"| clusters per target (eps {a['cluster_eps']} rad) |", "|---|---|---|---|---|---|---|---|"]

    def trow(name, row):
        s1, s2, t = row["refined"]["1mm_0.01rad"], row["refined"]["0.1mm_0.001rad"], row["time_to_1000"]
        # (the sampler and every baseline cap are timed in turns, chunk by chunk: see time_to_1000)
        return (f"| {name} | {100 * s1['success']:.2f} % | {100 * s2['success']:.2f} % | "
                f"{100 * s1['targets_with_any']:.1f} % | {100 * s1['inside_limits']:.1f} % | "
                f"{_f(t.get('cpu_s_per_1000_successes'), '{:.3f}')} / {_f(t['s_per_1000_successes'], '{:.3f}')} | "
                f"{_f(row['diversity']['mean_pairwise_rad'], '{:.2f}')} | {row['diversity']['clusters_mean']:.1f} |")

    lines.append(trow("**posegen `IKSampler.sample(refine=True)`**", flow))
    t1 = flow.get("temperature_1")
    if t1:
        lines.append(f"| posegen, the same at temperature 1 | {100 * t1['success']:.2f} % | | | | | "
                     f"{_f(t1['diversity']['mean_pairwise_rad'], '{:.2f}')} | {t1['diversity']['clusters_mean']:.1f} |")
    for b in base.get("by_max_iters", []):
        mark = " (its fastest)" if b["max_iters"] == base.get("max_iters") else ""
        lines.append(trow(f"DLS from uniform random starts, {b['max_iters']} iterations{mark}", b))
    lines.append(f"| {PUBLISHED_REFINED} (published) | | | | | | | |")
    tf, tb = flow["time_to_1000"].get("cpu_s_per_1000_successes"), base["time_to_1000"].get("cpu_s_per_1000_successes")
    if tf and tb:
        wall = base['time_to_1000']['s_per_1000_successes'] / flow['time_to_1000']['s_per_1000_successes']
        how = (f"{tb / tf:.1f}x faster than" if tb >= tf else f"{tf / tb:.1f}x slower than")
        lines += ["", f"Time to 1000 exact solutions: {how} the baseline's fastest setting in CPU time (speed ratio "
                  f"{tb / tf:.2f} in CPU time, {wall:.2f} in wall time)."]
    pub = PUBLISHED.get(robot)
    if pub:
        s1 = flow["refined"]["1mm_0.01rad"]
        lines += ["", "How far from IKFlow: raw samples have "
                  f"{r['pos_mm']['mean'] / pub[0]['pos_mm']:.1f}x IKFlow full's "
                  f"mean position error and {r['rot_deg']['mean'] / pub[0]['rot_deg']:.1f}x its rotation error "
                  f"(and {r['pos_mm']['mean'] / pub[1]['pos_mm']:.1f}x / "
                  f"{r['rot_deg']['mean'] / pub[1]['rot_deg']:.1f}x IKFlow lite's), after "
                  f"{tr['seconds'] / 60:.0f} min on one CPU thread against IKFlow's GPU training. "
                  f"Refined, {100 * s1['success']:.1f} % of samples are exact where IKFlow + LM reports 99.9-100 %; "
                  f"{_f(flow['time_to_1000']['s_per_1000_successes'], '{:.2f}')} s (wall) per 1000 exact solutions on "
                  f"one CPU thread against IKFlow's ~0.19 s (GPU), and "
                  f"{_f(base['time_to_1000']['s_per_1000_successes'], '{:.2f}')} s for DLS from random starts here."]
    if flow.get("ode_steps"):
        lines += ["", "Sampling integrator (first 100 targets): "
                  + "; ".join(f"rk4 x {s['steps']}: {s['pos_mm']['mean']:.1f} mm / {s['rot_deg']['mean']:.1f} deg, "
                              f"{s['ms_100']:.0f} ms per 100" for s in flow["ode_steps"]) + "."]
    if flow.get("density_rank"):
        lines += ["", "Raw samples ranked by the model's density (`sample(rank=\"density\", spare=k)`, the most probable "
                  "of 1 + k draws each; first 100 targets, thread CPU time per 1000 solutions): " + "; ".join(
                      (f"of {s['draws_per_solution']:g}x draws" if s["draws_per_solution"] > 1 else "unranked")
                      + f": {s['pos_mm']['mean']:.1f} mm / {s['rot_deg']['mean']:.1f} deg, {s['cpu_s_per_1000']:.2f} s"
                      for s in flow["density_rank"])
                  + " (the likelihood pass with the exact divergence costs far more than the draws)."]
    if d.get("curve"):
        lines += ["", "Raw error against training time (one run, cosine schedule over the whole budget; first 100 "
                  "targets): " + "; ".join(
                      f"{c['train_seconds'] / 60:.1f} min ({c['train_steps']} steps): {c['pos_mm']['mean']:.1f} mm / "
                      f"{c['rot_deg']['mean']:.1f} deg" for c in d["curve"]) + "."]
    return "\n".join(lines)


def recipe_section(d) -> str:
    a, m = d["args"], d["machine"]
    lines = ["### Recipe: what a short training budget favours (Panda)", "",
             f"*Source: `benchmarks/results/full/ik_recipe.json`; machine: {m['cpu']}, {m['cores']} cores, no GPU, "
             f"1 torch thread per run, {a['parallel_runs']} runs at a time. {d.get('note', '')}*", "",
             f"Each row: `IKSampler.fit(max_minutes={a['minutes']})`, raw samples ({a['solver']}) for {a['targets']} "
             f"targets x {a['per_target']}.", "",
             "| width x depth | conditioning | batch | lr | steps in budget | final loss "
             "| pos. error mean / median (mm) "
             "| rot. error mean (deg) |", "|---|---|---|---|---|---|---|---|"]
    notes = []
    for r in d["results"]:
        mark = ""
        if r.get("note"):
            notes.append(r["note"])
            mark = f" ({r.get('minutes', '?')} min, note {len(notes)})"
        lines.append(f"| {r['hidden']} x {r['depth']}{mark} | {r['conditioning']} | {r['batch_size']} | {r['lr']:g} | "
                     f"{r['steps']} | {_f(r['loss'], '{:.2f}')} | {r['pos_mm_mean']:.1f} / {r['pos_mm_median']:.1f} | "
                     f"{r['rot_deg_mean']:.1f} |")
    lines += [""] + [f"Note {i + 1}: {n}" for i, n in enumerate(notes)]
    return "\n".join(lines)


def markdown_section(d, path: str) -> str:
    """``make_results.py``'s hook: the RESULTS.md section of one results file of this script."""
    if d.get("kind") == "recipe":
        return "## IK distributions: recipe comparison\n\n" + recipe_section(d).split("\n", 2)[2]
    robot = d["results"][0]["robot"]
    return (f"## IK distributions on IKFlow's protocol: {robot} (`benchmarks/ik.py`)\n\nPublished rows are the "
            "papers' numbers on their hardware, not measured here.\n\n" + section(d).split("\n", 2)[2])


def cmd_markdown(args):
    """Print the sections (make_results.py puts them into RESULTS.md through :func:`markdown_section`)."""
    parts = []
    for name in [f"ik_{r}.json" for r in args.robots.split(",")] + ["ik_recipe.json"]:
        p = Path(args.results) / name
        if p.exists():
            parts += [markdown_section(read_json(p), str(p)), ""]
    print("\n".join(parts))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--robot", default="panda")
    t.add_argument("--minutes", type=float, default=20.0)
    t.add_argument("--steps", type=int, help="stop after this many steps too (a budget a loaded machine keeps)")
    t.add_argument("--time-sampling", default="uniform", choices=("uniform", "late"))
    t.add_argument("--full-turns", action="store_true",
                   help="model full-turn joints as angles (IKSampler(full_turns=True))")
    t.add_argument("--snapshots", default="2,5,10")
    t.add_argument("--run", default="runs/ik_bench")
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--depth", type=int, default=4)
    t.add_argument("--conditioning", default="concat")
    t.add_argument("--batch-size", type=int, default=512)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--verbose", action="store_true")
    e = sub.add_parser("eval")
    e.add_argument("--robot", default="panda")
    e.add_argument("--run", default="runs/ik_bench")
    e.add_argument("--targets", type=int, default=500)
    e.add_argument("--per-target", type=int, default=50)
    e.add_argument("--target-seed", type=int, default=10_000)
    e.add_argument("--baseline-iters", type=lambda v: [int(x) for x in v.split(",")], default=[20, 30, 60],
                   help="iteration caps of the random-start baseline (its row is the fastest)")
    e.add_argument("--cluster-eps", type=float, default=0.2)
    e.add_argument("--ode-steps", type=lambda s: [int(v) for v in s.split(",")], default=[4, 8, 32])
    e.add_argument("--density-spares", type=lambda s: [float(v) for v in s.split(",") if v], default=[1.0, 3.0],
                   help="raw samples ranked by density from (1 + k) n draws, for each k (first 100 targets; '' skips)")
    e.add_argument("--threads", type=int, default=1)
    e.add_argument("--out", default=str(RESULTS))
    add_speed_parser(sub)
    add_convergence_parser(sub)
    m = sub.add_parser("markdown")
    m.add_argument("--robots", default="panda,ur5e,iiwa14")
    m.add_argument("--results", default=str(RESULTS))
    args = p.parse_args(argv)
    {"train": cmd_train, "eval": cmd_eval, "speed": cmd_speed, "convergence": cmd_convergence,
     "markdown": cmd_markdown}[args.cmd](args)


if __name__ == "__main__":
    main()
