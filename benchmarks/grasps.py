"""Grasp data generation: the seeded object set, antipodal candidates and MuJoCo shake-test labels, timed.

    # 3 objects of every kind + 9 pybullet random_urdfs, 100 grasps each; JSON to benchmarks/results/full/grasps.json
    OMP_NUM_THREADS=1 python benchmarks/grasps.py run --per-kind 3 --pybullet 9 --per-object 100
    # the shake test in 1 and 2 processes on the same 300 grasps of a mug: results/full/grasps_pool.json
    OMP_NUM_THREADS=1 python benchmarks/grasps.py pool --grasps 300 --processes 2
    # label the first 300 grasps of an ACRONYM file (not shipped: CC BY-NC), compare with its labels
    OMP_NUM_THREADS=1 python benchmarks/grasps.py acronym Mug_10f6...h5 --mesh-root acronym/data/examples
    # the shipped grasp model on the objects it never saw (the last 30 of configs/pretrained/grasps.yaml's set),
    # beside the antipodal generator: results/full/grasps_unseen.json
    OMP_NUM_THREADS=1 python benchmarks/grasps.py unseen --samples 100
    python benchmarks/grasps.py markdown   # the tables of the JSON, printed

``unseen``: per held-out object, ``--samples`` grasps from the model (``GraspSampler.pretrained`` or ``--model``)
labelled by the same shake test; their success rate, that of the half with the highest log-density, coverage of
the object's successful reference grasps (its labelled antipodal candidates in the run folder: a reference is
covered when a sample is within 2 cm at the TCP and 20 degrees, jaw flip allowed), diversity, and time per 100
grasps; beside the antipodal generator alone (success rate of its labelled candidates, its time per candidate
and per successful grasp, and the coverage of ``--samples`` fresh candidates).

Per object: generation time (procedural objects), watertight / convex, CoACD pieces and time,
wall time per candidate, shake-test wall time per grasp (one process) and the share that holds.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Result, read_json, set_threads  # noqa: E402

from posegen.grasps import (KINDS, evaluate, load_acronym, load_object, make_objects, pybullet_objects,  # noqa: E402
                            sample_antipodal, simulate)
from posegen.grasps.decompose import is_convex  # noqa: E402
from posegen.grasps.metrics import coverage, diversity  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "full" / "grasps.json"


def _object_row(obj, kind: str, make_s: float, per_object: int, seed: int) -> dict:
    t0 = time.perf_counter()
    parts = obj.convex_parts()
    decompose_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    try:
        cand = sample_antipodal(obj, per_object, seed=seed)
    except ValueError as e:
        return {"object": obj.name, "kind": kind, "error": str(e)}
    sample_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = simulate(obj, cand.transforms, progress=False)
    label_s = time.perf_counter() - t0
    return {"object": obj.name, "kind": kind, "faces": int(len(obj.mesh.faces)), "watertight": obj.is_watertight,
            "convex": is_convex(obj.mesh), "make_s": make_s, "pieces": len(parts), "decompose_s": decompose_s,
            "candidates": len(cand), "sample_s_per_grasp": sample_s / len(cand),
            "label_s_per_grasp": label_s / len(cand), "holds": float(q["object_in_gripper"].float().mean()),
            "transforms": cand.transforms}


def _acronym_row(path: Path, mesh_root: Path, n: int) -> dict:
    a = load_acronym(path)
    obj = load_object(mesh_root / a.object_file, a.object_scale)
    t0 = time.perf_counter()
    obj.convex_parts()
    decompose_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ours_q = simulate(obj, a.transforms[:n], progress=False)
    ours = ours_q["object_in_gripper"].numpy()
    label_s = time.perf_counter() - t0
    theirs = a.success[:n].numpy()
    groups = {"only_ours": ours & ~theirs, "both": ours & theirs}
    motion = {}
    for who, q in (("acronym", a.qualities["flex"]), ("ours", ours_q)):
        for kind in ("linear", "angular"):
            moved = q[f"object_motion_during_shaking_{kind}"][:n].numpy()
            for group, mask in groups.items():
                if mask.any():
                    motion[f"{who}_shaking_{kind}_median_{group}"] = float(np.nanmedian(moved[mask]))
    return {**motion, "file": path.name, "grasps": int(len(ours)), "decompose_s": decompose_s,
            "pieces": len(obj.convex_parts()), "label_s_per_grasp": label_s / len(ours),
            "agreement": float((ours == theirs).mean()),
            "holds_ours": float(ours.mean()), "holds_acronym": float(theirs.mean()),
            "both_hold": int((ours & theirs).sum()), "only_ours": int((ours & ~theirs).sum()),
            "only_acronym": int((~ours & theirs).sum()), "neither": int((~ours & ~theirs).sum())}


def _unseen_row(gs, ref, obj, n: int, n_cover: int, seed: int) -> dict:
    """The model and the antipodal generator on one held-out object; ``ref``: its labelled candidates. ``n``
    samples are labelled; coverage is of ``n_cover`` samples of each (sampling is cheap, labelling is not)."""
    t0 = time.perf_counter()
    T = gs.sample(obj, n, seed=seed)
    sample_s = time.perf_counter() - t0
    cover = gs.sample(obj, n_cover, seed=seed + 10_000)
    t0 = time.perf_counter()
    lp = gs.log_prob(obj, T)
    score_s = time.perf_counter() - t0
    ok = evaluate(obj, T, progress=False).numpy()
    top = np.argsort(-lp.numpy(), kind="stable")[: n // 2]
    t0 = time.perf_counter()
    cand = sample_antipodal(obj, n_cover, seed=seed + 1)   # not the references' seed (0)
    anti_s = time.perf_counter() - t0
    good = ref.transforms[ref.success.bool()].numpy()
    anti_rate = float(ref.success.float().mean())
    div = diversity(T[torch.as_tensor(ok)]) if ok.sum() >= 2 else {"position": float("nan"), "angle": float("nan")}
    return {"object": obj.name, "kind": obj.name.rsplit("_", 1)[0], "samples": n, "coverage_samples": n_cover,
            "references": int(len(good)),
            "success": float(ok.mean()), "success_top_half": float(ok[top].mean()),
            "coverage": coverage(cover, good), "coverage_labelled": coverage(T, good),
            "diversity_position": div["position"], "diversity_angle": div["angle"],
            "s_per_100": 100 * sample_s / n, "score_s_per_100": 100 * score_s / n,
            "antipodal_success": anti_rate, "antipodal_candidates": int(len(ref.success)),
            "antipodal_s_per_candidate": anti_s / len(cand), "antipodal_coverage": coverage(cand.transforms, good)}


def _keep(res: Result, row: dict, out: Path) -> None:
    """Add ``row`` to ``res``, print it rounded and write the file: a checkpoint after every object."""
    res.add(row)
    print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
    res.write(out)


def unseen(args) -> None:
    """The grasp model on the held-out objects of the shipped model's object set."""
    import grasp_pretrained   # the object set and its split, as the shipped model was trained

    from posegen.samplers import GraspSampler

    set_threads(1)
    s = grasp_pretrained.settings()
    run_dir = Path(args.run)
    _, held = grasp_pretrained.object_files(run_dir, s)
    held = held[: args.objects]
    gs = GraspSampler.load(args.model) if args.model else GraspSampler.pretrained("panda")
    res = Result("grasps_unseen", vars(args))
    res.extra["model"] = {"path": str(args.model or "pretrained panda"), **gs.training}
    done = res.resume_from(args.out, key=lambda r: r["object"]) if args.resume else {}
    for k, f in enumerate(held):
        if f.stem in done:
            res.add(done[f.stem])
            continue
        ref = load_acronym(run_dir / "grasps" / f"{f.stem}.h5")
        obj = ref.load_object()
        obj.convex_parts()   # CoACD once, outside the timed parts
        _keep(res, _unseen_row(gs, ref, obj, args.samples, args.coverage_samples, args.seed + k), args.out)
    print(f"wrote {res.write(args.out)}")


def run(args) -> None:
    set_threads(1)
    res = Result("grasps", vars(args))
    objs = []
    t0 = time.perf_counter()
    made = make_objects(args.per_kind * len(KINDS), seed=args.seed)
    make_s = (time.perf_counter() - t0) / len(made)
    objs += [(o, p["kind"], make_s) for o, p in made]
    objs += [(load_object(p), "pybullet_random_urdf", 0.0) for p in pybullet_objects()[: args.pybullet]]
    for i, (obj, kind, ms) in enumerate(objs):
        row = _object_row(obj, kind, ms, args.per_object, args.seed + i)
        row.pop("transforms", None)
        _keep(res, row, args.out)
    print(f"wrote {res.write(args.out)}")


def acronym(args) -> None:
    """Label the first ``--grasps`` grasps of an ACRONYM file with the shake test; compare with its labels."""
    set_threads(1)
    res = Result("grasps_acronym", vars(args))
    res.add(_acronym_row(Path(args.file), Path(args.mesh_root), args.grasps))
    print(res.rows[-1], flush=True)
    print(f"wrote {res.write(args.out)}")


def pool(args) -> None:
    """Label the same grasps of one mug in 1 and in ``--processes`` processes, alternately, ``--repeats`` times."""
    set_threads(1)
    res = Result("grasps_pool", vars(args))
    obj, _ = make_objects(5, seed=args.seed)[4]  # mug_0004: CoACD pieces, a non-convex object
    obj.convex_parts()
    T = sample_antipodal(obj, args.grasps, seed=args.seed).transforms
    labels = {}
    for rep in range(args.repeats):
        for p in (1, args.processes):
            t0 = time.perf_counter()
            labels[p] = simulate(obj, T, processes=p, progress=False)["object_in_gripper"]
            seconds = time.perf_counter() - t0
            res.add({"repeat": rep, "processes": p, "grasps": len(T), "s_per_grasp": seconds / len(T)})
            print(res.rows[-1], flush=True)
    res.extra["same_labels"] = bool((labels[1] == labels[args.processes]).all())
    print(f"wrote {res.write(args.out)}")


def unseen_table(d: dict) -> str:
    """The markdown table of a ``grasps_unseen`` results file: per kind of object and over all of them."""
    rows, m = d["results"], d["model"]
    lines = [f"Unseen objects: {len(rows)} (never trained on), {rows[0]['samples']} labelled model samples each, "
             f"coverage of {rows[0]['coverage_samples']} samples; model: {m['path']}, {m.get('steps', '?')} steps; "
             f"machine {d['machine']['cpu']}, commit {str(d['machine'].get('commit'))[:7]}, load "
             f"{[round(x, 1) for x in d['machine']['load_avg_1_5_15']]}.", "",
             "| kind | objects | success | top half by log p | antipodal success | ratio | coverage | antipodal "
             "coverage | diversity (cm / deg) | ms per 100 | ms per successful: model / antipodal |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    groups = {k: [r for r in rows if r["kind"] == k] for k in dict.fromkeys(r["kind"] for r in rows)}
    groups["all"] = rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # nan means of objects without two successful samples
        for kind, rs in groups.items():
            mean = {k: float(np.nanmean([np.nan if r[k] is None else r[k] for r in rs])) for k in rs[0]
                    if k not in ("object", "kind")}
            per_ok = f"{1e3 * mean['s_per_100'] / 100 / mean['success']:.1f}" if mean["success"] > 0 else "-"
            anti_ok = 1e3 * mean["antipodal_s_per_candidate"] / max(mean["antipodal_success"], 1e-9)
            lines.append(
                f"| {'**all**' if kind == 'all' else kind} | {len(rs)} | {mean['success']:.0%} | "
                f"{mean['success_top_half']:.0%} | {mean['antipodal_success']:.0%} | "
                f"{mean['success'] / mean['antipodal_success']:.2f} | {mean['coverage']:.0%} | "
                f"{mean['antipodal_coverage']:.0%} | {100 * mean['diversity_position']:.1f} / "
                f"{np.degrees(mean['diversity_angle']):.0f} | {1e3 * mean['s_per_100']:.0f} | {per_ok} / {anti_ok:.1f} |")
    return "\n".join(lines)


def markdown_section(d: dict, path: str):
    """RESULTS.md's section of a results file of this script (``make_results.py``); the data-generation tables
    are in ``notes/grasps.md``."""
    if d.get("benchmark") != "grasps_unseen":
        return None
    return (f"## Grasps on unseen objects: the shipped grasp model against the antipodal generator "
            f"(`benchmarks/grasps.py unseen`, `{path}`)\n\n" + unseen_table(d))


def markdown(args) -> None:
    unseen_json = args.out.with_name("grasps_unseen.json")
    if unseen_json.exists():
        print(unseen_table(read_json(unseen_json)) + "\n")
    data = read_json(args.out)
    rows = [r for r in data["results"] if "error" not in r]
    print(f"Machine: {data['machine']['cpu']}, load {data['machine']['load_avg_1_5_15']}, commit "
          f"{data['machine']['commit']}; {data['args']['per_object']} grasps per object.\n")
    print("| kind | objects | convex | CoACD pieces (s) | candidate ms/grasp | label ms/grasp | holds |")
    print("|---|---|---|---|---|---|---|")
    for kind in dict.fromkeys(r["kind"] for r in rows):
        rs = [r for r in rows if r["kind"] == kind]
        med = {k: float(np.median([r[k] for r in rs]))
               for k in ("pieces", "decompose_s", "sample_s_per_grasp", "label_s_per_grasp")}
        print(f"| {kind} | {len(rs)} | {sum(r['convex'] for r in rs)} | {med['pieces']:.0f} ({med['decompose_s']:.1f}) "
              f"| {1e3 * med['sample_s_per_grasp']:.1f} | {1e3 * med['label_s_per_grasp']:.1f} | "
              f"{np.mean([r['holds'] for r in rs]):.0%} |")
    errors = [r for r in data["results"] if "error" in r]
    for r in errors:
        print(f"\n{r['object']}: {r['error']}")
    pooled = args.out.with_name("grasps_pool.json")
    if pooled.exists():
        d = read_json(pooled)
        per = {}
        for r in d["results"]:
            per.setdefault(r["processes"], []).append(r["s_per_grasp"])
        print(f"\nProcesses (mug_0004, {d['results'][0]['grasps']} grasps, load {d['machine']['load_avg_1_5_15']}): "
              + ", ".join(f"{p}: {1e3 * float(np.median(v)):.1f} ms/grasp" for p, v in sorted(per.items()))
              + f"; same labels: {d['same_labels']}.")
    acr = args.out.with_name("grasps_acronym.json")
    if acr.exists():
        a = read_json(acr)["results"][0]
        print(f"\nACRONYM {a['file']}, first {a['grasps']} grasps: agreement {a['agreement']:.1%}; hold: ours "
              f"{a['holds_ours']:.1%}, ACRONYM {a['holds_acronym']:.1%}; both {a['both_hold']}, only ours "
              f"{a['only_ours']}, only ACRONYM {a['only_acronym']}, neither {a['neither']}; "
              f"{1e3 * a['label_s_per_grasp']:.1f} ms/grasp, CoACD {a['pieces']} pieces in {a['decompose_s']:.1f} s.")
        m = {k.replace("_shaking_", " ").replace("_median_", " "): v for k, v in a.items() if "_median_" in k}
        if "acronym linear only_ours" in m:
            print(f"Grasps that hold here but not in ACRONYM: median object motion in ACRONYM's shake "
                  f"{m['acronym linear only_ours']:.3f} m / {m['acronym angular only_ours']:.2f} rad, in this one "
                  f"{m['ours linear only_ours']:.3f} m / {m['ours angular only_ours']:.2f} rad (grasps that hold in "
                  f"both: ACRONYM {m['acronym linear both']:.3f} m, here {m['ours linear both']:.3f} m).")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="action", required=True)
    q = sub.add_parser("run")
    q.add_argument("--per-kind", type=int, default=3, help="procedural objects of every kind")
    q.add_argument("--pybullet", type=int, default=9, help="pybullet_data random_urdfs objects (0: none)")
    q.add_argument("--per-object", type=int, default=100, help="grasps per object")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", type=Path, default=OUT)
    q = sub.add_parser("acronym")
    q.add_argument("file", help="an ACRONYM grasp file (not shipped: CC BY-NC)")
    q.add_argument("--mesh-root", default=".", help="folder its object/file is relative to")
    q.add_argument("--grasps", type=int, default=300, help="its first N grasps")
    q.add_argument("--out", type=Path, default=OUT.with_name("grasps_acronym.json"))
    q = sub.add_parser("pool")
    q.add_argument("--grasps", type=int, default=300)
    q.add_argument("--processes", type=int, default=2)
    q.add_argument("--repeats", type=int, default=2)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", type=Path, default=OUT.with_name("grasps_pool.json"))
    q = sub.add_parser("unseen")
    q.add_argument("--samples", type=int, default=100, help="model samples per object")
    q.add_argument("--objects", type=int, default=None, help="only the first N held-out objects")
    q.add_argument("--coverage-samples", type=int, default=1000,
                   help="samples of the model and of the antipodal generator for coverage (not labelled)")
    q.add_argument("--model", type=Path, default=None, help="a GraspSampler file (default: the shipped panda model)")
    q.add_argument("--run", type=Path, default=Path(__file__).resolve().parent / "checkpoints" / "grasp_panda",
                   help="the run folder of benchmarks/grasp_pretrained.py (objects and labelled grasps)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--resume", action="store_true", help="keep the objects already in --out")
    q.add_argument("--out", type=Path, default=OUT.with_name("grasps_unseen.json"))
    q = sub.add_parser("markdown")
    q.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    {"run": run, "pool": pool, "acronym": acronym, "unseen": unseen, "markdown": markdown}[args.action](args)


if __name__ == "__main__":
    main()
