r"""Accuracy of posegen's sphere collision models against an exact mesh reference.

Robots (URDFs with collision meshes from the ``pybullet_data`` pip package, none fitted by hand):

* ``kuka_iiwa`` (kuka_iiwa/model.urdf, STL), ``xarm6`` (xarm/xarm6_robot.urdf, convex-decomposition OBJ),
  ``panda_pybullet`` (franka_panda/panda.urdf, OBJ; chain to panda_hand, fingers left out);
* ``kuka_iiwa_mjcf``: the same kuka_iiwa as MJCF (MuJoCo's translation of the URDF,
  :func:`posegen.robots.mjcf.mjcf_from_urdf`, written to a temporary folder), loaded and its collision geometry
  read through MuJoCo's compiled model (:mod:`posegen.robots.mjcfgeometry`: recentred float32 mesh vertices in
  the compiled geom frames); its link frames are checked equal to the URDF's (to 1e-9 m), and the reference is
  the compiled triangles;
* ``panda``, ``iiwa14`` and ``ur5e``: the built-in robots (their link frames equal pybullet's Panda and LBR
  iiwa and the UR5e of the ``airo-models`` pip package, checked here to 1e-9 m) with those robots' collision
  meshes, the Panda's hand with both fingers open (0.04 m): the shipped hand-measured tables and tables fitted
  to the same meshes are measured side by side.

Reference (exact for the meshes as given): obstacles are a ball or a cube per configuration (radius or
half-width 1-10 cm), placed -2 to +4 cm from touching a random surface point of a random moving link
(:func:`obstacle_cases`). A ball is in contact when its centre's signed
distance to a link's solid (exact point-triangle distance, inside by the generalised winding number:
:mod:`posegen.robots.geometry`) is below its radius; the penetration depth is their difference. A box is in
contact when FCL (python-fcl, triangle-mesh BVH) finds an intersection with a link mesh or the box's centre is
inside a link. Self-collision: FCL mesh-mesh intersection of every link pair the model checks, and separately
of the pairs it disables as ``never`` (MoveIt's rule), on uniform configurations.

Models: fitted (tolerance ``--tolerance``) with each of ``--inflations`` (0: spheres inside the meshes), the
default (``DEFAULT_INFLATION`` of each link's surface error) and ``conservative=True`` (inflation 1); hand
tables as shipped (default and conservative).

Reported per robot and model: contacts, misses (reference contact, model free) and false alarms (model
contact, reference free) in % of the contacts, the deepest missed ball penetration (m), the largest reference
clearance of a false alarm (m, balls), self-collision misses / false alarms, spheres, and CPU time per 1000
configurations of ``CollisionChecker.collision_free`` (one thread).

    python benchmarks/collision_accuracy.py --n 1000 --out benchmarks/results/collision_accuracy.json

Needs, besides ``posegen[robots]``: ``pip install python-fcl pybullet`` and ``pip install --no-deps
airo-models`` (FCL for the reference, pybullet and airo-models for their meshes; tested with python-fcl
0.7.0.11, pybullet 3.2.7, airo-models 0.0.12).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from posegen import robots  # noqa: E402
from posegen.robots.autofit import fit_table  # noqa: E402
from posegen.robots.collision import DEFAULT_INFLATION, CollisionChecker, CollisionModel  # noqa: E402
from posegen.robots.geometry import (link_triangles, load_mesh_triangles, robot_collision_geometry,  # noqa: E402
                                     signed_distance, winding_number)
from posegen.robots.mjcf import mjcf_from_urdf  # noqa: E402
from posegen.robots.scene import quat_xyzw_to_matrix  # noqa: E402
from posegen.robots.spherefit import sample_surface  # noqa: E402
from posegen.robots.spheres import save_sphere_table  # noqa: E402


def pybullet_dir() -> Path:
    import pybullet_data
    return Path(pybullet_data.getDataPath())


ARMS = {"kuka_iiwa": ("kuka_iiwa/model.urdf", None), "xarm6": ("xarm/xarm6_robot.urdf", None),
        "panda_pybullet": ("franka_panda/panda.urdf", "panda_hand")}
MJCF_ARMS = {"kuka_iiwa_mjcf": "kuka_iiwa"}         # MJCF translations of ARMS


def arm(name):
    """``(robot, {link: triangles}, hand-table name or None)`` for a benchmark robot."""
    P = pybullet_dir()
    if name in ARMS:
        f, ee = ARMS[name]
        r = robots.load(P / f, ee_link=ee)
        geoms = robot_collision_geometry(r)
        return r, {lk: link_triangles(g) for lk, g in geoms.items()}, None
    if name in MJCF_ARMS:
        import tempfile
        f, ee = ARMS[MJCF_ARMS[name]]
        xml = mjcf_from_urdf(P / f, Path(tempfile.mkdtemp(prefix=f"{name}_")) / "model.xml")
        r, src = robots.load(xml, ee_link=ee), robots.load(P / f, ee_link=ee)
        tri = {lk: link_triangles(g) for lk, g in robot_collision_geometry(r).items()}
        check_same_frames(r, src, {lk: lk for lk in tri})
        return r, tri, None
    if name == "panda":
        r, src = robots.load("panda"), robots.load(P / "franka_panda/panda.urdf", ee_link="panda_hand")
        tri = {lk: link_triangles(g) for lk, g in robot_collision_geometry(src).items() if lk in r.link_names}
        finger = load_mesh_triangles(P / "franka_panda/meshes/collision/finger.obj")
        flip = quat_xyzw_to_matrix((0.0, 0.0, 1.0, 0.0))
        left = finger + torch.tensor([0.0, 0.04, 0.0584], dtype=torch.float64)
        right = finger @ flip.T + torch.tensor([0.0, -0.04, 0.0584], dtype=torch.float64)
        tri["panda_hand"] = torch.cat([tri["panda_hand"], left, right])
        check_same_frames(r, src, {lk: lk for lk in tri})
        return r, tri, "panda"
    if name == "iiwa14":
        r, src = robots.load("iiwa14"), robots.load(P / "kuka_iiwa/model.urdf")
        names = {f"iiwa_link_{i}": f"lbr_iiwa_link_{i}" for i in range(8)}
        geoms = robot_collision_geometry(src)
        tri = {lk: link_triangles(geoms[src_lk]) for lk, src_lk in names.items()}
        check_same_frames(r, src, names)
        return r, tri, "iiwa14"
    if name == "ur5e":
        r, src = robots.load("ur5e"), robots.load(airo_ur5e(), ee_link="tool0")
        tri = {lk: link_triangles(g) for lk, g in robot_collision_geometry(src).items()}
        check_same_frames(r, src, {lk: lk for lk in tri})
        return r, tri, "ur5e"
    raise SystemExit(f"unknown robot {name!r}: {sorted(ARMS) + sorted(MJCF_ARMS) + ['panda', 'iiwa14', 'ur5e']}")


def airo_ur5e() -> Path:
    """The UR5e of the ``airo-models`` pip package (collision OBJs; the base as two spheres), its URDF copied
    to a temporary folder without the ``drake:`` attributes that make it invalid XML (unbound prefix)."""
    import re
    import tempfile
    import importlib.util
    spec = importlib.util.find_spec("airo_models")
    if spec is None:
        raise SystemExit("ur5e needs the airo-models package: pip install --no-deps airo-models")
    src = Path(spec.submodule_search_locations[0]) / "arms" / "ur5e"
    dst = Path(tempfile.mkdtemp(prefix="ur5e_airo_"))
    (dst / "ur5e.urdf").write_text(re.sub(r' drake:[a-z_]+="[^"]*"', "", (src / "ur5e.urdf").read_text()))
    (dst / "collision").symlink_to(src / "collision")
    return dst / "ur5e.urdf"


def check_same_frames(robot, src, names):
    g = torch.Generator().manual_seed(0)
    lim = robot.joint_limits
    q = lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(16, robot.dof, generator=g, dtype=torch.float64)
    a, b = robot.frames(q, list(names)), src.frames(q, list(names.values()))
    err = max(float((a[k] - b[v]).abs().max()) for k, v in names.items())
    if err > 1e-9:
        raise SystemExit(f"{robot.name}: link frames differ from {src.name}'s by {err}")


def uniform(robot, n, g):
    lim = robot.joint_limits
    return lim[:, 0] + (lim[:, 1] - lim[:, 0]) * torch.rand(n, robot.dof, generator=g, dtype=torch.float64)


def transformed(tri, T):
    return tri @ T[:3, :3].T + T[:3, 3]


def obstacle_cases(robot, tri, n, seed):
    """Seeded configurations ``q (n, dof)``, obstacle centres ``(n, 3)`` and sizes ``(n,)``: a ball or cube of
    size (radius, half-width) 1-10 cm whose surface is -2 to +4 cm from touching a random surface point ``p`` of
    a random moving link, on its outer side: centre at ``p + (size + s) u``, ``s ~ U(-2, 4) cm``, ``u`` the
    outward normal plus a N(0, 0.3^2) perturbation, normalised."""
    g = torch.Generator().manual_seed(seed)
    q = uniform(robot, n, g)
    desc = robot.description
    moving = [lk for lk in tri if any(j.movable for j in desc.path_joints(lk))]
    F = robot.frames(q, moving)
    pick = torch.randint(0, len(moving), (n,), generator=g)
    size = 0.01 + 0.09 * torch.rand(n, generator=g, dtype=torch.float64)
    shift = 0.06 * torch.rand(n, generator=g, dtype=torch.float64) - 0.02
    centres = torch.empty(n, 3, dtype=torch.float64)
    for i in range(n):
        lk = moving[int(pick[i])]
        p, nrm = sample_surface(tri[lk], 1, g)
        if float(winding_number(p + 1e-3 * nrm, tri[lk])[0]) > 0.5:      # stored normal points inward
            nrm = -nrm
        u = nrm[0] + 0.3 * torch.randn(3, generator=g, dtype=torch.float64)
        u = u / u.norm()
        T = F[lk][i]
        centres[i] = T[:3, :3] @ (p[0] + (size[i] + shift[i]) * u) + T[:3, 3]
    return q, centres, size


def reference_balls(robot, tri, q, centres, size):
    """Exact ``(n,)`` signed clearance of each ball to the robot's link solids (negative: penetration)."""
    F = robot.frames(q, list(tri))
    out = torch.full((len(q),), math.inf, dtype=torch.float64)
    for lk, t in tri.items():
        T = F[lk]                                            # (n, 4, 4)
        local = ((centres - T[:, :3, 3]).unsqueeze(-2) @ T[:, :3, :3]).squeeze(-2)     # centre in link frame
        out = torch.minimum(out, signed_distance(local, t) - size)
    return out


def fcl_mesh(t):
    import fcl
    m = fcl.BVHModel()
    v = t.reshape(-1, 3).numpy()
    m.beginModel(len(v), len(t))
    m.addSubModel(v, np.arange(len(v)).reshape(-1, 3))
    m.endModel()
    return m


def fcl_obj(geom, T):
    import fcl
    T = T.numpy()
    return fcl.CollisionObject(geom, fcl.Transform(T[:3, :3], T[:3, 3]))


def fcl_hit(a, b) -> bool:
    import fcl
    return fcl.collide(a, b, fcl.CollisionRequest(), fcl.CollisionResult()) > 0


def reference_boxes(robot, tri, q, centres, size, meshes):
    """``(n,)`` bool: the axis-aligned cube of half-width ``size`` at ``centres`` meets a link (FCL, or its
    centre inside a link)."""
    import fcl
    F = robot.frames(q, list(tri))
    out = torch.zeros(len(q), dtype=torch.bool)
    for i in range(len(q)):
        box = fcl.CollisionObject(fcl.Box(*(2 * float(size[i]),) * 3),
                                  fcl.Transform(centres[i].numpy()))
        for lk, t in tri.items():
            T = F[lk][i]
            if fcl_hit(fcl_obj(meshes[lk], T), box):
                out[i] = True
                break
            local = (centres[i] - T[:3, 3]) @ T[:3, :3]
            if float(winding_number(local[None], t)[0]) > 0.5:
                out[i] = True
                break
    return out


def model_clearance(model, q, centres, size, kind):
    c = model.sphere_centers(q) - centres[:, None]
    if kind == "ball":
        d = c.norm(dim=-1) - size[:, None]
    else:
        e = c.abs() - size[:, None, None]
        d = e.clamp_min(0).norm(dim=-1) + e.amax(-1).clamp_max(0)
    return (d - model.radii).amin(-1)


def reference_self(robot, tri, q, pairs, meshes):
    """``(n, P)`` bool: link pair ``pairs[k]`` intersects at configuration ``q[i]`` (FCL mesh-mesh)."""
    F = robot.frames(q, list(tri))
    out = torch.zeros(len(q), len(pairs), dtype=torch.bool)
    for i in range(len(q)):
        objs = {lk: fcl_obj(meshes[lk], F[lk][i]) for lk in {x for p in pairs for x in p}}
        for k, (a, b) in enumerate(pairs):
            out[i, k] = fcl_hit(objs[a], objs[b])
    return out


def rates(ref_hit, model_hit):
    n = int(ref_hit.sum())
    miss, fa = int((ref_hit & ~model_hit).sum()), int((model_hit & ~ref_hit).sum())
    return {"contacts": n, "cases": len(ref_hit), "misses": miss, "false_alarms": fa,
            "miss_pct": round(100 * miss / max(n, 1), 2), "false_alarm_pct_of_contacts": round(100 * fa / max(n, 1), 2),
            "false_alarm_pct_of_free": round(100 * fa / max(len(ref_hit) - n, 1), 2)}


def checker_time(model, n=1000):
    q = uniform(model.robot, n, torch.Generator().manual_seed(9))
    ch = CollisionChecker(model=model)
    ch.collision_free(q[:10])
    t = time.thread_time()
    for k in range(0, n, 100):
        ch.collision_free(q[k:k + 100])
    return round(time.thread_time() - t, 3)


def evaluate(name, n, tolerance, seed, self_samples, fitted_dir, inflations=(0.0, 0.25, 0.5, 1.0)):
    robot, tri, hand = arm(name)
    meshes = {lk: fcl_mesh(t) for lk, t in tri.items()}
    t0 = time.time()
    origin = {"panda": "pybullet_data's franka_panda meshes (hand with both fingers open, 0.04 m)",
              "iiwa14": "pybullet_data's kuka_iiwa/model.urdf meshes (lbr_iiwa_link_i = iiwa_link_i)",
              "ur5e": "the airo-models package's ur5e collision meshes",
              "kuka_iiwa_mjcf": "MuJoCo's MJCF translation of kuka_iiwa/model.urdf (pybullet_data), compiled meshes"
              }.get(name, f"{ARMS.get(name, [name])[0]} (pybullet_data)")
    fitted = fit_table(robot, tri, tolerance, seed=seed, self_samples=self_samples, origin=origin)
    fit_s = round(time.time() - t0, 1)
    if fitted_dir:
        save_sphere_table(fitted, Path(fitted_dir) / f"collision_{name}_fitted_spheres.yaml")
    models = {f"fitted_inflation_{x:g}": CollisionModel(robot, fitted, inflation=x) for x in inflations}
    models["fitted_default"] = CollisionModel(robot, fitted)
    models["fitted_conservative"] = CollisionModel(robot, fitted, conservative=True)
    if hand:
        models["hand_default"] = CollisionModel(robot, hand)
        models["hand_conservative"] = CollisionModel(robot, hand, conservative=True)
    q, centres, size = obstacle_cases(robot, tri, n, seed)
    ref_ball = reference_balls(robot, tri, q, centres, size)
    ref_box = reference_boxes(robot, tri, q, centres, size, meshes)
    qs = uniform(robot, n, torch.Generator().manual_seed(seed + 1))
    links = list(tri)
    adjacent = {p for p, why in models["fitted_default"].disabled.items() if why == "adjacent"}
    all_pairs = [(a, b) for i, a in enumerate(links) for b in links[i + 1:] if frozenset((a, b)) not in adjacent]
    ref_pairs = reference_self(robot, tri, qs, all_pairs, meshes)              # (n, P)
    out = {"robot": name, "dof": robot.dof, "links": links, "fit_seconds": fit_s, "tolerance": tolerance,
           "surface_error": fitted.surface_error, "disabled": [list(r) for r in fitted.disabled], "models": {}}
    for label, m in models.items():
        row = {"spheres": len(m.radii), "self_pairs": len(m.pairs), "inflation": m.inflation}
        d_ball = model_clearance(m, q, centres, size, "ball")
        row["ball"] = rates(ref_ball < 0, d_ball < 0)
        missed = (ref_ball < 0) & (d_ball >= 0)
        row["ball"]["deepest_miss_m"] = round(float(-ref_ball[missed].min()), 5) if missed.any() else 0.0
        fa = (ref_ball >= 0) & (d_ball < 0)
        row["ball"]["largest_false_alarm_clearance_m"] = round(float(ref_ball[fa].max()), 5) if fa.any() else 0.0
        row["box"] = rates(ref_box, model_clearance(m, q, centres, size, "box") < 0)
        checked = {(m.links[int(m.link_index[i])], m.links[int(m.link_index[j])]) for i, j in m.pairs.tolist()}
        checked = [k for k, (a, b) in enumerate(all_pairs) if (a, b) in checked or (b, a) in checked]
        row["self"] = rates(ref_pairs[:, checked].any(-1), m.self_clearance(qs) < 0)
        never = [k for k, (a, b) in enumerate(all_pairs) if m.disabled.get(frozenset((a, b))) == "never"]
        row["self"]["never_pairs"] = len(never)
        row["self"]["contacts_on_never_pairs"] = int(ref_pairs[:, never].any(-1).sum()) if never else 0
        row["cpu_s_per_1000_collision_free"] = checker_time(m)
        out["models"][label] = row
        print(name, label, json.dumps(row), flush=True)
    return out


def summary(paths) -> str:
    """One line per robot and model from result files: what the collision module's docstring quotes."""
    lines = []
    for path in paths:
        for r in json.loads(Path(path).read_text())["results"]:
            lines.append(f"{r['robot']} (tolerance {r['tolerance'] * 1000:g} mm, surface error up to "
                         f"{max(r['surface_error'].values()) * 1000:.1f} mm, fit {r['fit_seconds']:.0f} s):")
            for label, m in r["models"].items():
                b, x, s = m["ball"], m["box"], m["self"]
                lines.append(f"  {label}: {m['spheres']} spheres; balls {b['contacts']} contacts, miss "
                             f"{b['miss_pct']:.2f} %, false alarms {b['false_alarm_pct_of_contacts']:.2f} %, deepest "
                             f"miss {b['deepest_miss_m'] * 1000:.1f} mm; boxes {x['contacts']}: miss "
                             f"{x['miss_pct']:.2f} %, false alarms {x['false_alarm_pct_of_contacts']:.2f} %; "
                             f"self {s['contacts']}: miss "
                             f"{s['misses']}, false alarms {s['false_alarms']}, on never-pairs "
                             f"{s['contacts_on_never_pairs']}; {m['cpu_s_per_1000_collision_free']} s / 1000")
    return "\n".join(lines)


ORIGINS = {"panda": "pybullet_data's franka_panda collision meshes (the hand with both fingers open, 0.04 m)",
           "iiwa14": "pybullet_data's kuka_iiwa/model.urdf collision meshes (lbr_iiwa_link_i = iiwa_link_i)",
           "ur5e": "the airo-models package's ur5e collision meshes (its base: two spheres)"}


def install_builtin(name: str, results: Path, fitted: Path) -> Path:
    """Write the fitted table of built-in ``name`` to ``posegen/robots/descriptions/<name>_spheres.yaml`` with a
    header quoting its measured accuracy and that of the hand table it replaces (from ``results``)."""
    from dataclasses import replace
    import yaml
    from posegen.robots.spheres import parse_sphere_table

    t = parse_sphere_table(yaml.safe_load(fitted.read_text()), str(fitted))
    res = [r for r in json.loads(results.read_text())["results"] if r["robot"] == name][0]
    f, h = res["models"]["fitted_default"], res["models"]["hand_default"]

    def pct(m, k):
        return f"{m[k]['miss_pct']:.2f} % / {m[k]['false_alarm_pct_of_contacts']:.2f} %"

    def self_row(m):
        return f"{m['self']['misses']} / {m['self']['false_alarms']} of {m['self']['contacts']}"

    header = (f"Collision spheres of the built-in {name}, fitted by posegen.robots.autofit.fit_table (tolerance "
              f"{res['tolerance'] * 1000:g} mm, seed 0)",
              f"to {ORIGINS[name]};",
              "the link frames equal the built-in's (checked to 1e-9 m).",
              "Every sphere lies inside its link's collision mesh; surface_error: the largest distance from the mesh",
              "surface to the link's spheres (m), measured on an independent surface sample; the default model grows",
              "the spheres by DEFAULT_INFLATION (0.25) of it, conservative=True by all of it. disable_collisions:",
              "MoveIt's setup-assistant rules (adjacent, default at the ready configuration, always / never in 2000",
              "uniform configurations).",
              f"Measured against the exact meshes (benchmarks/results/{results.name}, from",
              f"benchmarks/collision_accuracy.py, {f['ball']['cases']} cases each; misses / false alarms in % of the "
              f"reference contacts):",
              f"  fitted, default model ({f['spheres']} spheres): balls {pct(f, 'ball')}, boxes {pct(f, 'box')},",
              f"    self-collision {self_row(f)}; deepest missed ball {f['ball']['deepest_miss_m'] * 1000:.1f} mm",
              f"  the hand-measured capsules it replaced ({h['spheres']} spheres): balls {pct(h, 'ball')}, boxes "
              f"{pct(h, 'box')},",
              f"    self-collision {self_row(h)}; deepest missed ball {h['ball']['deepest_miss_m'] * 1000:.1f} mm",
              "The hand tables are kept as test data in tests/test_collision.py (HAND_TABLES).")
    out = ROOT / "posegen" / "robots" / "descriptions" / f"{name}_spheres.yaml"
    return save_sphere_table(replace(t, robot=name, header=header), out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--robots", nargs="+", default=["kuka_iiwa", "xarm6", "panda", "iiwa14", "ur5e"])
    ap.add_argument("--n", type=int, default=1000, help="configurations per check")
    ap.add_argument("--tolerance", type=float, default=0.005)
    ap.add_argument("--inflations", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0])
    ap.add_argument("--self-samples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/collision_accuracy.json"))
    ap.add_argument("--fitted-dir", default=str(ROOT / "benchmarks/results"),
                    help="where the fitted tables are written (collision_<robot>_fitted_spheres.yaml)")
    ap.add_argument("--summary", nargs="+", metavar="JSON", help="print the summary of result files and exit")
    ap.add_argument("--install", nargs=2, metavar=("ROBOT", "JSON"),
                    help="write the fitted table of a built-in robot (panda, iiwa14, ur5e) measured in JSON to "
                         "posegen/robots/descriptions/ROBOT_spheres.yaml, and exit")
    args = ap.parse_args(argv)
    if args.summary:
        print(summary(args.summary))
        return
    if args.install:
        name, results = args.install
        fitted = Path(args.fitted_dir) / f"collision_{name}_fitted_spheres.yaml"
        print("wrote", install_builtin(name, Path(results), fitted))
        return
    torch.set_num_threads(1)
    res = {"machine": "this project's shared 2-core CPU (" + platform.processor() + ")",
           "command": " ".join(sys.argv), "default_inflation": DEFAULT_INFLATION, "results": []}
    for name in args.robots:
        res["results"].append(evaluate(name, args.n, args.tolerance, args.seed, args.self_samples, args.fitted_dir,
                                      args.inflations))
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1))          # checkpoint after every robot
    print("wrote", args.out)


if __name__ == "__main__":
    main()
