"""Grasp data generation: the seeded object set, antipodal candidates and MuJoCo shake-test labels, timed.

    # 3 objects of every kind + 9 pybullet random_urdfs, 100 grasps each; JSON to benchmarks/results/full/grasps.json
    OMP_NUM_THREADS=1 python benchmarks/grasps.py run --per-kind 3 --pybullet 9 --per-object 100
    # the shake test in 1 and 2 processes on the same 300 grasps of a mug: results/full/grasps_pool.json
    OMP_NUM_THREADS=1 python benchmarks/grasps.py pool --grasps 300 --processes 2
    # label the first 300 grasps of an ACRONYM file (not shipped: CC BY-NC), compare with its labels
    OMP_NUM_THREADS=1 python benchmarks/grasps.py acronym Mug_10f6...h5 --mesh-root acronym/data/examples
    python benchmarks/grasps.py markdown   # the tables of the JSON, printed

Per object: generation time (procedural objects), watertight / convex, CoACD pieces and time,
wall time per candidate, shake-test wall time per grasp (one process) and the share that holds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import Result, read_json, set_threads  # noqa: E402

from posegen.grasps import KINDS, load_acronym, load_object, make_objects, pybullet_objects, sample_antipodal, simulate  # noqa: E402
from posegen.grasps.decompose import is_convex  # noqa: E402

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
        res.add(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        res.write(args.out)  # a checkpoint after every object
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


def markdown(args) -> None:
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
    q = sub.add_parser("markdown")
    q.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    {"run": run, "pool": pool, "acronym": acronym, "markdown": markdown}[args.action](args)


if __name__ == "__main__":
    main()
