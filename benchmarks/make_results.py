"""Render ``benchmarks/RESULTS.md`` from the JSON files the benchmark scripts wrote.

    python benchmarks/make_results.py --results benchmarks/results/full --out benchmarks/RESULTS.md

Every table states the file it comes from, the machine, the commit and the wall time. Missing files are
reported as missing, never filled in.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, read_json  # noqa: E402

from posegen.atomic import atomic_open  # noqa: E402


def rel(p: Path) -> str:
    """``p`` relative to the repository when inside it (no machine-specific absolute paths in RESULTS.md)."""
    try:
        return Path(p).resolve().relative_to(REPO).as_posix()
    except ValueError:
        return Path(p).as_posix()

OBJ_NAMES = {"cnfm": "posegen CNFM", "rfm": "posegen RFM", "moser": "posegen Moser", "interpolant": "posegen interpolant"}


def fmt(x, nd=2):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{nd}f}"


def mean_std(xs: List[float], nd=2) -> str:
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    if len(xs) == 1:
        return f"{xs[0]:.{nd}f} (1 seed)"
    return f"{statistics.mean(xs):.{nd}f} ± {statistics.stdev(xs):.{nd}f}"


def table(header: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def short_commit(commit: Optional[str], dirty: Optional[bool]) -> str:
    return (commit or "unknown")[:10] + (" (+ uncommitted changes)" if dirty else "")


def provenance(d: Dict, name: str) -> str:
    m = d["machine"]
    cuda = m["cuda"]["device"] if m.get("cuda") else "none"
    load = m.get("load_avg_1_5_15")
    load_s = "/".join(f"{x:.1f}" for x in load) if load else "n/a"
    commit = short_commit(m.get("commit"), m.get("dirty"))
    return (f"*Source: `{name}`; machine: {m['cpu']}, {m['cores']} cores, {m['torch_threads']} torch "
            f"thread(s) per process, load average at start {load_s}, GPU: {cuda}; torch {m['torch']}, "
            f"python {m['python']}; commit {commit}; started {d['started']}, wall time "
            f"{d['duration_s'] / 60:.1f} min.*") + resumed_note(d)


def resumed_note(d: Dict) -> str:
    """Which rows came from earlier sessions of a resumed run (their start, commit and wall time)."""
    earlier = d.get("earlier_sessions") or []
    if not earlier:
        return ""
    parts = []
    for e in earlier:
        commit = short_commit(e.get("commit"), e.get("dirty"))
        parts.append(f"started {e.get('started')}, commit {commit}, {(e.get('duration_s') or 0) / 60:.1f} min")
    total = d["duration_s"] + sum(e.get("duration_s") or 0 for e in earlier)
    return (f" *Resumed run: the last session added {len(d['results']) - earlier[-1].get('rows', 0)} of "
            f"{len(d['results'])} rows; earlier sessions: " + "; ".join(parts)
            + f". Wall time of all sessions: {total / 60:.1f} min.*")


def settings_line(a: Dict, keys: List[str]) -> str:
    return "Settings: " + ", ".join(f"{k}={a[k]}" for k in keys if k in a) + "."


def mc_solver_label(n: Optional[Dict], a: Dict) -> str:
    """``"rk4-256"`` from a normalisation record's solver (older files: the args' ``mc_steps``)."""
    s = (n or {}).get("solver") or {"method": "rk4", "steps": a.get("mc_steps", a.get("eval_steps"))}
    if isinstance(s.get("steps"), list):
        s = {**s, "steps": max(s["steps"])}
    return f"{s['method']}-{s['steps']}" if s.get("steps") is not None else f"{s['method']} tol {s.get('atol')}"


def mc_cell(ns: List[Dict]) -> str:
    """Mean estimate, mean SEM and largest |z| of several runs' estimates of one estimator."""
    if not ns:
        return "n/a"
    zs = [abs(n["z_score"]) for n in ns if n.get("z_score") is not None]
    return (f"{fmt(statistics.mean(n['estimate'] for n in ns), 3)} (SEM ~{fmt(statistics.mean(n['sem'] for n in ns), 3)}, "
            f"max \\|z\\| {fmt(max(zs) if zs else None, 1)})")


# ---------------------------------------------------------------------------------------------- earth
def earth_section(d: Dict, name: str, title: str = "Earth data on S2: test NLL (lower is better)") -> str:
    rows = d["results"]
    a = d["args"]
    datasets = [x for x in ("volcano", "earthquake", "flood", "fire") if any(r["dataset"] == x for r in rows)]
    objectives = [o for o in ("cnfm", "rfm", "moser", "interpolant") if any(r["objective"] == o for r in rows)]
    by = {}
    for r in rows:
        by.setdefault((r["objective"], r["dataset"]), []).append(r)
    out = [f"## {title}", "", provenance(d, name), "",
           settings_line(a, ["seeds", "steps", "batch_size", "hidden", "depth", "lr", "val_every", "patience",
                             "val_steps", "eval_steps", "check_points"]
                         + (["cnfm_max_components"] if "cnfm" in objectives else [])
                         + [k for k in ("fourier", "time_sampling") if a.get(k) not in (None, 0, "uniform")]
                         + ["workers", "threads"])
           + " Mean ± std over seeds of the per-seed mean test NLL; test NLL from rk4 with "
             f"{a.get('eval_steps')} steps (exact divergence), best EMA weights by validation NLL.", ""]
    trs = []
    best_ours = {}
    for o in objectives:
        cells = []
        for ds in datasets:
            vals = [r["test"]["nll"] for r in by.get((o, ds), [])]
            cells.append(mean_std(vals))
            if vals:
                m = statistics.mean(vals)
                if ds not in best_ours or m < best_ours[ds][0]:
                    best_ours[ds] = (m, o)
        trs.append([f"**{OBJ_NAMES[o]}**"] + cells)
    pub = d.get("published", {})
    for label, vals in pub.items():
        trs.append([f"{label} (published)"] + [fmt(vals.get(ds)) for ds in datasets])
    verdict = []
    for ds in datasets:
        best_pub = min(v[ds] for v in pub.values()) if pub else None
        if ds in best_ours and best_pub is not None:
            m, o = best_ours[ds]
            verdict.append(f"{'yes' if m < best_pub else 'no'} ({fmt(m)} {o} vs {fmt(best_pub)})")
        else:
            verdict.append("n/a")
    trs.append(["beats best published?"] + verdict)
    moser = next((v for k, v in pub.items() if k.startswith("Moser Flow")), None)
    if moser:
        # the bar: every set ahead of Moser Flow's published row
        trs.append(["ahead of Moser Flow (published)?"]
                   + [f"{'yes' if best_ours[ds][0] < moser[ds] else 'no'} ({fmt(best_ours[ds][0])} vs {fmt(moser[ds])})"
                      if ds in best_ours and ds in moser else "n/a" for ds in datasets])
    out.append(table(["model"] + datasets, trs))
    missing = [o for o in ("cnfm", "rfm", "moser", "interpolant") if o not in objectives]
    if missing:
        out += ["", f"Not run here: {', '.join(missing)}."]
    if "interpolant" in objectives and "rfm" in objectives:
        same = all(abs(ri["test"]["nll"] - rr["test"]["nll"]) < 1e-4
                   for ri in rows if ri["objective"] == "interpolant"
                   for rr in rows if rr["objective"] == "rfm" and rr["dataset"] == ri["dataset"]
                   and rr["seed"] == ri["seed"])
        if same:
            out += ["", "The interpolant and RFM rows coincide: on a compact manifold posegen's interpolant "
                        "follows the same geodesic with the same random draws, and its loss "
                        "`|v|^2 - 2<dx_t, v>` differs from RFM's `|v - dx_t|^2` only by `|dx_t|^2`, which "
                        "does not depend on the network. Identical numbers are expected."]
    # checks
    out += ["", "### Checks: normalisation and solver accuracy", "",
            "Monte Carlo estimate of the integral of exp(log_prob) over S2 (must be 1 within its standard "
            "error): `uniform` = 4 pi mean p(x) over uniform x; `defensive` = importance sampling from "
            "uniform / 2 + KDEs of the training data (widths 0.1, 0.03, 0.01 rad) / 2. Shown: mean estimate "
            "over seeds, mean SEM and the largest |z| = |estimate - 1| / SEM over seeds "
            f"({a.get('mc_points')} points per estimator), one line per Monte Carlo solver (`MC solver`: the "
            "rk4 steps that scored those points; seeds: the runs it covers). Solver: largest "
            "|log_prob(rk4) - log_prob(dopri5, tol 1e-6)| on the checked test points, and the mean of "
            "NLL(rk4) - NLL(dopri5) there (negative: rk4 optimistic), largest |.| over seeds.", ""]
    crs = []
    for o in objectives:
        for ds in datasets:
            groups: Dict[str, list] = {}
            for r in by.get((o, ds), []):
                groups.setdefault(mc_solver_label(r.get("normalisation"), a), []).append(r)
            for label, rs in groups.items():
                cells = [f"{OBJ_NAMES[o]}", ds, label, ",".join(str(x) for x in sorted(r["seed"] for r in rs))]
                cells += [mc_cell([r["normalisation"][key] for r in rs if r.get("normalisation")])
                          for key in ("base", "defensive")]
                sc = [r["solver_check"].get("max_abs_diff") for r in rs]
                sc = [x for x in sc if x is not None]
                cells.append(f"{max(sc):.1e}" if sc else "closed form")
                md = [r["solver_check"]["mean_nll_diff"] for r in rs if "mean_nll_diff" in r["solver_check"]]
                cells.append(f"{max(md, key=abs):+.3f}" if md else "closed form")
                crs.append(cells)
    out.append(table(["objective", "data set", "MC solver", "seeds", "uniform", "defensive",
                      "solver max abs diff", "rk4 - dopri5, mean NLL"], crs))
    # the same Monte Carlo points scored with several solvers (earth_nll.py --mc-steps 16,256)
    multi = [r for r in rows if len(r.get("normalisation_by_solver") or []) > 1]
    if multi:
        labels = sorted({mc_solver_label(n, a) for r in multi for n in r["normalisation_by_solver"]},
                        key=lambda x: int(x.split("-")[-1]) if x.split("-")[-1].isdigit() else 0)
        out += ["", "The same Monte Carlo points of one model scored with each solver (defensive estimator, "
                    "estimate ± SEM; a CNF's density integrates to 1 when its ODE is solved exactly, so what "
                    "moves from column to column is solver error):", ""]
        mrs = []
        for r in multi:
            by_label = {mc_solver_label(n, a): n for n in r["normalisation_by_solver"]}
            mrs.append([OBJ_NAMES[r["objective"]], r["dataset"], str(r["seed"])]
                       + [f"{fmt(by_label[x]['defensive']['estimate'], 3)} ± {fmt(by_label[x]['defensive']['sem'], 3)}"
                          if x in by_label else "n/a" for x in labels])
        out.append(table(["objective", "data set", "seed"] + labels, mrs))
    # speed / time to target
    out += ["", "### Training speed and time to target", "",
            "Steps/s: training steps per second, validation excluded (mean over runs). Time to target: for "
            "each data set and seed, the target is the worst objective's best validation NLL (a level every "
            "objective reached); shown is the mean training time (s, validation excluded) until the "
            "validation NLL first reached it. Validation every "
            f"{a.get('val_every')} steps, so times are quantised to that.", ""]
    srs = []
    for o in objectives:
        cells = [OBJ_NAMES[o]]
        for ds in datasets:
            rs = by.get((o, ds), [])
            sp = [r["steps_per_s"] for r in rs if r.get("steps_per_s")]
            ttt = []
            for r in rs:
                peers = [p for p in rows if p["dataset"] == ds and p["seed"] == r["seed"] and p["curve"]]
                if not peers or not r["curve"]:
                    continue
                target = max(min(c[2] for c in p["curve"]) for p in peers)
                hit = next((c[1] for c in r["curve"] if c[2] <= target + 1e-12), None)
                if hit is not None:
                    ttt.append(hit)
            cells.append(f"{fmt(statistics.mean(sp), 1) if sp else 'n/a'} steps/s; "
                         f"{fmt(statistics.mean(ttt), 0) if ttt else 'n/a'} s")
        srs.append(cells)
    out.append(table(["objective"] + datasets, srs))
    tot = sum(r["total_seconds"] for r in rows)
    out += ["", f"Per-run wall time (train + evaluation), mean {tot / max(1, len(rows)):.0f} s over {len(rows)} "
                f"runs; sum {tot / 60:.1f} min of process time."]
    return "\n".join(out)


def mc_solver_section(d: Dict, name: str) -> str:
    """The normalisation estimate of one trained model, on the same points, with several solvers."""
    a = d["args"]
    out = ["### Normalisation estimate against the solver", "", provenance(d, name), "",
           f"One model ({a['dataset']}, seed {a['seed']}, RFM, width {a['hidden']} x depth {a['depth']}, "
           f"{a['steps']} steps: the larger-budget setting) scored with each solver on the same "
           f"{a['mc_points']} Monte Carlo points per estimator. A CNF's density integrates to 1 when its ODE "
           "is solved exactly, so what changes from row to row is solver error.", ""]
    rows = []
    for r in d["results"]:
        s = r["solver"]
        label = f"{s['method']}, {s['steps']} steps" if "steps" in s else f"{s['method']}, tol {s.get('atol')}"
        n = r["normalisation"]
        rows.append([label] + [f"{fmt(n[k]['estimate'], 3)} (SEM {fmt(n[k]['sem'], 3)}, z "
                               f"{fmt(n[k]['z_score'], 1)})" for k in ("base", "defensive")]
                    + [fmt(n["seconds"], 0)])
    out.append(table(["solver", "uniform", "defensive", "seconds"], rows))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- robot
def robot_section(d: Dict, name: str) -> str:
    rows = d["results"]
    a = d["args"]
    tasks = [t for t in ("T7", "R3xSO3", "R3xT7xS3", "R3xT8xS3^6") if any(r["task"] == t for r in rows)]
    objectives = [o for o in ("cnfm", "rfm", "moser", "interpolant") if any(r["objective"] == o for r in rows)]
    by = {}
    for r in rows:
        by.setdefault((r["objective"], r["task"]), []).append(r)
    out = ["## Robot manifolds: test NLL (lower is better)", "", provenance(d, name), "",
           settings_line(a, ["seeds", "steps", "batch_size", "hidden", "depth", "lr", "val_every", "patience",
                             "eval_steps", "cnfm_max_components", "synthetic_n", "test_max"]),
           "", f"Data: Panda reach-and-grasp demos (`{Path(a.get('panda_path', '?')).name}`, robomimic layout, "
               "test = `mask/valid` demos, validation = 10% of the training demos); R3 x T8 x S3^6 is "
               "**synthetic** (`robot_nll.synthetic_big`, seed 0), as no real data set of that shape ships. "
               "NLL in nats w.r.t. the Riemannian volume (positions in metres, so R3 densities are per m^3). "
               "Moser Flow needs a compact manifold (T7 only). Objective options: "
               + ", ".join(f"{o} {v}" for o, v in a.get("objective_options", {}).items() if v)
               + (f"; CNFM on R3xT8xS3^6 uses the {a['big_cnfm_divergence']} divergence"
                  if a.get("big_cnfm_divergence") and "R3xT8xS3^6" in tasks else "") + ".", ""]
    trs = []
    for o in objectives:
        trs.append([OBJ_NAMES[o]] + [mean_std([r["test"]["nll"] for r in by.get((o, t), [])]) if by.get((o, t))
                                     else "—" for t in tasks])
    out.append(table(["objective"] + tasks, trs))
    fk_rows = [r for r in rows if r.get("fk")]
    if fk_rows:
        out += ["", "### Forward-kinematics consistency of R3 x T7 x S3 samples", "",
                "For each sample: FK (TCP) of the sampled joints vs the sampled end-effector pose. `shuffled`: "
                "the same samples with the joint rows permuted (what no learned dependence gives); `data`: the "
                "held-out demos themselves (FK of recorded joints, the floor). Median / 95th percentile, mean "
                "over seeds.", ""]
        frs = []
        for o in objectives:
            rs = [r for r in fk_rows if r["objective"] == o]
            if not rs:
                continue
            for kind, label in (("paired", "samples"), ("shuffled", "shuffled pairs")):
                g = lambda k: statistics.mean(r["fk"]["samples"][kind][k] for r in rs)  # noqa: E731
                frs.append([OBJ_NAMES[o], label, f"{g('pos_cm_median'):.1f} / {g('pos_cm_p95'):.1f}",
                            f"{g('rot_deg_median'):.1f} / {g('rot_deg_p95'):.1f}",
                            f"{statistics.mean(r['fk']['samples']['within_limits'] for r in rs):.2f}"])
        r0 = fk_rows[0]["fk"]["data_test"]["paired"]
        frs.append(["data (test demos)", "recorded", f"{r0['pos_cm_median']:.2f} / {r0['pos_cm_p95']:.2f}",
                    f"{r0['rot_deg_median']:.2f} / {r0['rot_deg_p95']:.2f}",
                    f"{fk_rows[0]['fk']['data_test']['within_limits']:.2f}"])
        out.append(table(["model", "pairs", "position error cm (median / p95)", "rotation error deg (median / p95)",
                          "joints within limits"], frs))
    out += ["", "### Normalisation check", "",
            "Integral of exp(log_prob) by importance sampling; `base`: proposal = the flow's base "
            "(N(0, I) on standardised R^d, uniform on compact factors); `defensive`: base / 2 + KDEs of the "
            "training data (widths 0.1, 0.03, 0.01 in standardised units / rad) / 2. In 7 to 29 dimensions "
            "with a concentrated model both estimators are heavy-tailed (low ESS): an estimate far below 1 "
            "with a small ESS means the proposal missed the model's mass, not that the model is "
            "mis-normalised; trust only rows with a large ESS. Mean estimate over seeds (max \\|z\\| over seeds).", ""]
    crs = []
    for o in objectives:
        for t in tasks:
            rs = [r for r in by.get((o, t), []) if r.get("normalisation")]
            if not rs:
                continue
            cells = [OBJ_NAMES[o], t]
            for key in ("base", "defensive"):
                est = [r["normalisation"][key]["estimate"] for r in rs]
                zs = [abs(r["normalisation"][key]["z_score"]) for r in rs if r["normalisation"][key].get("z_score") is not None]
                ess = [r["normalisation"][key]["ess"] for r in rs]
                cells.append(f"{fmt(statistics.mean(est), 3)} (max \\|z\\| {fmt(max(zs) if zs else None, 1)}, "
                             f"ESS {statistics.mean(ess):.0f}/{rs[0]['normalisation']['n']})")
            crs.append(cells)
    out.append(table(["objective", "task", "base", "defensive"], crs))
    tot = sum(r["total_seconds"] for r in rows)
    out += ["", f"Per-run wall time mean {tot / max(1, len(rows)):.0f} s over {len(rows)} runs."]
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------- speed
def speed_section(d: Dict, name: str) -> str:
    s = d.get("sections", {})
    a = d["args"]
    out = ["## Speed", "", provenance(d, name), "",
           f"Untrained flows of width {a.get('hidden')} and depth {a.get('depth')} (weights do not change the "
           "cost of fixed-step solvers); medians of repeated calls. CPU only: no GPU was lent for these runs.", ""]
    if s.get("train"):
        out += ["### Training steps/s (batch " + str(a.get("batch_size")) + ")", ""]
        rs = [[r["manifold"], r["objective"] + (f" (max_components {r['options']['max_components']})"
                                               if r["options"].get("max_components") else
                                               (" (all components)" if r["objective"] == "cnfm" else "")),
               str(r["n_data"]), f"{r['step_ms']:.1f}", f"{r['steps_per_s']:.1f}"] for r in s["train"]]
        out.append(table(["manifold", "objective", "data points", "ms/step", "steps/s"], rs))
    if s.get("cnfm_breakdown"):
        out += ["", "### Where a CNFM step goes (forward + backward, ms)", "",
                "`velocity`: the network alone (what an RFM step costs, less the path); `+div exact/hutchinson`: "
                "velocity and its divergence (jacfwd over the coordinates / one Rademacher jvp); "
                "`targets`: the mixture path's d/dt log p_t and gradient.", ""]
        rs = []
        for r in s["cnfm_breakdown"]:
            ms = r["ms"]
            tk = [k for k in ms if k.startswith("targets_components_")]
            ck = [k for k in ms if k.startswith("cnfm_loss_fwd_bwd_components_")]
            rs.append([r["manifold"], str(r["coord_dim"]), f"{ms['rfm_loss_fwd_bwd']:.1f}", f"{ms['velocity_fwd_bwd']:.1f}",
                       f"{ms['velocity_div_exact_fwd_bwd']:.1f} (x{r['div_exact_over_velocity']:.1f})",
                       f"{ms['velocity_div_hutchinson_fwd_bwd']:.1f} (x{r['div_hutchinson_over_velocity']:.1f})",
                       "; ".join(f"{k.rsplit('_', 1)[1]}: {ms[k]:.1f}" for k in tk),
                       "; ".join(f"{k.rsplit('_', 1)[1]}: {ms[k]:.1f}" for k in ck)])
        out.append(table(["manifold", "coords", "RFM step", "velocity", "+div exact", "+div hutchinson",
                          "targets (components)", "CNFM loss (components)"], rs))
    if s.get("sampling"):
        fm = d.get("flow_matching")
        out += ["", "### Sampling", "",
                f"Poses/s of `PoseFlow.sample` at fixed NFE; `solver / network`: posegen's integrator over the "
                "bare network's forward time for the same NFE and batch (1.0 = no overhead; the limit); "
                f"`posegen / flow_matching`: posegen's integrator over flow_matching {fm}'s "
                "`RiemannianODESolver` on the same network, method and step count (< 1: posegen faster). "
                "flow_matching has no product manifold: for products it runs on posegen's geometry through a "
                "4-method adapter. Its rk4 is the 3/8 rule (same NFE). Ratios below 1 against the network are "
                "timing noise on a shared CPU.", ""]
        rs = [[r["manifold"], r["method"], str(r["nfe"]), str(r["n"]), f"{r['poses_per_s']:.0f}",
               f"{r['solver_over_network']:.2f}", f"{r['sample_over_network']:.2f}",
               fmt(r.get("posegen_over_flow_matching")),
               f"{r['max_endpoint_diff']:.1e}" if r.get("max_endpoint_diff") is not None else "n/a"]
              for r in s["sampling"]]
        out.append(table(["manifold", "method", "NFE", "batch", "poses/s", "solver / network",
                          "sample() / network", "posegen / flow_matching", "endpoint diff"], rs))
    if s.get("likelihood"):
        out += ["", "### Likelihood throughput (log_prob points/s, rk4)", ""]
        mans = sorted({r["manifold"] for r in s["likelihood"]}, key=lambda m: len(m))
        nfes = sorted({r["nfe"] for r in s["likelihood"]})
        rs = []
        for m in mans:
            for div in ("exact", "hutchinson"):
                cell = {r["nfe"]: r["points_per_s"] for r in s["likelihood"] if r["manifold"] == m and r["divergence"] == div}
                rs.append([m, div] + [f"{cell[n]:.0f}" if n in cell else "" for n in nfes])
        out.append(table(["manifold", "divergence"] + [f"NFE {n}" for n in nfes], rs))
    if s.get("likelihood_accuracy"):
        r0 = s["likelihood_accuracy"][0]
        out += ["", f"Accuracy vs NFE ({r0['model']}, {r0['n']} test points; error against dopri5 at tolerance "
                    "1e-7; Hutchinson with one probe per point):", ""]
        rs = [[r["divergence"], str(r["nfe"]), f"{r['mean_abs_err']:.1e}", f"{r['max_abs_err']:.1e}",
               f"{r['nll_err']:+.1e}"] for r in s["likelihood_accuracy"]]
        out.append(table(["divergence", "NFE", "mean abs error", "max abs error", "error of mean NLL"], rs))
    return "\n".join(out)


def render(results: Path, title_note: Optional[str] = None) -> str:
    parts = ["# posegen benchmark results", "",
             "Generated by `benchmarks/make_results.py` from the JSON files in "
             f"`{rel(results)}`; do not edit by hand. How to reproduce: `benchmarks/README.md`."]
    if title_note:
        parts += ["", title_note]
    for fname, fn in (("earth_nll.json", earth_section), ("robot_nll.json", robot_section), ("speed.json", speed_section)):
        p = results / fname
        if p.exists():
            parts += ["", fn(read_json(p), rel(p))]
        else:
            parts += ["", f"## {fname}: missing", "", f"`{rel(p)}` was not found: that benchmark has not "
                                                    "been run for this results set."]
        if fname == "earth_nll.json":
            # further earth runs at other budgets (earth_nll_scaled.json, ...), each its own table
            for extra in sorted(results.glob("earth_nll_*.json")):
                d = read_json(extra)
                a = d["args"]
                model = "".join([f", Fourier features ({a['fourier']} octaves)" if a.get("fourier") else "",
                                 f", {a['time_sampling']} times" if a.get("time_sampling", "uniform") != "uniform"
                                 else ""])
                title = (f"Earth data on S2 at a larger budget: "
                         f"{', '.join(OBJ_NAMES[o] for o in a['objectives'])}, width {a['hidden']} x depth "
                         f"{a['depth']}, {a['steps']} steps{model}")
                parts += ["", earth_section(d, rel(extra), title)]
            check = results / "mc_solver_check.json"
            if check.exists():
                parts += ["", mc_solver_section(read_json(check), rel(check))]
    # every other results file whose benchmark script renders its own table (a markdown_section(d, path)
    # function in benchmarks/<benchmark>.py): new benchmarks add a table without touching this file
    done = {"earth_nll.json", "robot_nll.json", "speed.json", "mc_solver_check.json"}
    for p in sorted(results.glob("*.json")):
        if p.name in done or p.name.startswith("earth_nll_"):
            continue
        d = read_json(p)
        section = _plugin_section(d, rel(p))
        if section:
            parts += ["", section]
    # analyses that compare runs of different commits (before/after a change) are written once, by hand,
    # as benchmarks/notes/*.md next to the scripts that measured them, and included verbatim
    for note in sorted((Path(__file__).resolve().parent / "notes").glob("*.md")):
        parts += ["", note.read_text().rstrip()]
    return "\n".join(parts) + "\n"


def _plugin_section(d: Dict, path: str) -> Optional[str]:
    import importlib

    name = d.get("benchmark")
    if not isinstance(name, str) or not name.isidentifier():
        return None
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    module = None
    # the script that wrote it: the benchmark's name, or its prefix (grasps_unseen -> grasps.py)
    for candidate in (name, name.split("_")[0]):
        try:
            module = importlib.import_module(candidate)
            break
        except ImportError:
            continue
    if module is None:
        return None
    render_fn = getattr(module, "markdown_section", None)
    return render_fn(d, path) if render_fn else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=Path("benchmarks/results/full"))
    p.add_argument("--out", type=Path, default=Path("benchmarks/RESULTS.md"))
    p.add_argument("--note", help="a line placed under the title (e.g. 'QUICK MODE: pipeline check only')")
    args = p.parse_args(argv)
    text = render(args.results, args.note)
    with atomic_open(args.out, "w", mkdir=True) as fh:
        fh.write(text)
    print(f"wrote {args.out}")
    return text


if __name__ == "__main__":
    main()
