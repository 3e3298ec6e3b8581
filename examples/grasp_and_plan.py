"""Grasp -> reach -> plan: an object on a table, grasp candidates, reachable joint goals, an OMPL motion.

The object (``--object mesh.obj``, default a procedural mug from posegen.grasps.make_objects) stands on a table
in front of the robot (the table top is the plane the robot stands on, z = 0; the object's mesh origin above
``--xy``, turned by ``--yaw``). Then, with timings and survivor counts printed at each stage:

1. grasp candidates in the object frame: from ``--grasp-model`` (a GraspSampler.save file), else the shipped
   GraspSampler.pretrained("panda") when present, else posegen.grasps.sample_antipodal (said in the output;
   antipodal candidates have no density, so they keep their draw order);
2. posegen.planning.grasp_reach.reach_grasps: the open gripper exactly clear of object and table; IK of the
   end-effector targets through the robot's gripper mount (Panda: its own hand; iiwa14 / ur5e: the Franka
   Hand flush on the flange, posegen.planning.grasp.MOUNTS), from the shipped IKSampler where there is one,
   else numerical IK from random starts; collision-free against the table and itself, the arm (not the
   fingers) against the object; a pre-grasp 10 cm back along the approach and a checked straight approach;
3. the goals ranked by grasp log-density, the best printed (with ``--physics``, only those whose grasp holds
   the object in posegen.grasps.evaluate's MuJoCo shake test);
4. an OMPL plan (RRT-Connect) from the ready configuration to the best pre-grasp, the object an obstacle
   for every link, then the approach.

Run (from the repository root; needs the grasps and planning extras)::

    python examples/grasp_and_plan.py --robot panda
    python examples/grasp_and_plan.py --robot iiwa14 --object mesh.obj --scale 0.001
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Tuple

import torch

from posegen import grasps
from posegen.planning.grasp import GRIPPER_TOLERANCE, MOUNTS, grasp_world, place_on_table
from posegen.planning.grasp_reach import STAGES, reach_grasps, plan_grasp
from posegen.samplers import GraspSampler, IKSampler


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--object", help="mesh file (OBJ, STL, PLY, ...; default: a procedural mug)")
    ap.add_argument("--scale", type=float, default=1.0, help="file units to metres (default 1)")
    ap.add_argument("--robot", default="panda", choices=sorted(MOUNTS), help="robot (default panda)")
    ap.add_argument("--grasp-model", help="a GraspSampler.save file (default: the pretrained one, if shipped)")
    ap.add_argument("--grasps", type=int, default=64, help="grasp candidates (default 64)")
    ap.add_argument("--n-ik", type=int, default=8, help="IK draws or starts per grasp (default 8)")
    ap.add_argument("--xy", type=float, nargs=2, default=(0.5, 0.0), help="object position on the table (m)")
    ap.add_argument("--yaw", type=float, default=0.0, help="object turn about the vertical (rad)")
    ap.add_argument("--pregrasp", type=float, default=0.1, help="pre-grasp back-off along the approach (m)")
    ap.add_argument("--gripper-tolerance", type=float, default=GRIPPER_TOLERANCE,
                    help="sphere fit of a hand mounted on iiwa14 / ur5e (m, default 0.01; 0.005: finer, slower)")
    ap.add_argument("--physics", action="store_true",
                    help="keep only goals whose grasp holds the object in the MuJoCo shake test (posegen.grasps."
                         "evaluate; the object's convex decomposition first: seconds to a minute)")
    ap.add_argument("--time-limit", type=float, default=10.0, help="planner seconds per try (default 10)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    return ap.parse_args(argv)


def load_object(args):
    if args.object is None:
        obj, params = grasps.make_objects(1, seed=args.seed, kinds=["mug"])[0]
        return obj, f"procedural mug {obj.name} (radius {params['radius']:.3f} m, height {params['height']:.3f} m)"
    obj = grasps.load_object(args.object, scale=args.scale, gripper="panda")
    return obj, f"{args.object} (scale {args.scale})"


def grasp_candidates(args, obj, world) -> Tuple[torch.Tensor, Optional[torch.Tensor], str]:
    """``(n, 4, 4)`` grasps in the object frame, their log-densities (None for antipodal ones), the source."""
    model = None
    if args.grasp_model:
        model, source = GraspSampler.load(args.grasp_model), f"GraspSampler from {args.grasp_model}"
    else:
        try:
            model, source = GraspSampler.pretrained(world.mount.gripper), "GraspSampler.pretrained"
        except ValueError:
            source = ("posegen.grasps.sample_antipodal: no pretrained GraspSampler is shipped yet, so candidates are "
                      "antipodal and unranked (draw order)")
    if model is None:
        cand = grasps.sample_antipodal(obj, args.grasps, world.mount.gripper, support=world.support, seed=args.seed)
        return cand.transforms, None, source
    if model.gripper != world.mount.gripper:
        raise ValueError(f"--grasp-model is for the {model.gripper!r} gripper, the robot carries "
                         f"{world.mount.gripper!r}")
    T = model.sample(obj, args.grasps, seed=args.seed)
    return T, model.log_prob(obj, T), f"{source} ({model.training.get('steps', 0)} training steps)"


def ik_sampler(robot_name: str):
    try:
        return IKSampler.pretrained(robot_name)
    except ValueError:
        return None


def report(reach, seconds_grasps: float, tcp_offset: float, n_show: int = 5) -> None:
    tcp = torch.tensor([0.0, 0.0, tcp_offset, 1.0], dtype=torch.float64)
    print(f"  {'stage':<16}{'survivors':>10}{'seconds':>10}")
    print(f"  {'candidates':<16}{reach.counts['candidates']:>10}{seconds_grasps:>10.2f}")
    for s in [*STAGES, *(k for k in reach.counts if k not in STAGES and k != "candidates")]:
        print(f"  {s:<16}{reach.counts[s]:>10}{reach.seconds[s]:>10.2f}")
    for k in range(min(n_show, len(reach))):
        p = (reach.grasps[k] @ tcp)[:3].tolist()
        q = ", ".join(f"{v:+.3f}" for v in reach.q_grasp[k].tolist())
        print(f"  #{k} grasp {int(reach.index[k]):>3}  log p {float(reach.log_prob[k]):8.2f}  "
              f"TCP at ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m  q = [{q}]")


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    obj, what = load_object(args)
    world = grasp_world(args.robot, obj, place_on_table(obj, args.xy, args.yaw), tolerance=args.gripper_tolerance)
    print(f"object: {what}, {'watertight' if obj.is_watertight else 'not watertight'}, at "
          f"{[round(v, 3) for v in world.object_pose[:3, 3].tolist()]} on the table (z = 0)")
    print(f"robot: {args.robot}; gripper: {world.mount.note}")
    if not world.mount.covered:
        n = sum(c.link == world.mount.link for c in world.spheres.capsules)
        print(f"  its collision model: {n} spheres fitted inside its boxes at {args.gripper_tolerance} m, surface "
              f"error {world.spheres.surface_error[world.mount.link] * 1000:.1f} mm")
    print(f"scene and checkers built in {time.perf_counter() - t0:.2f} s "
          f"({len(world.checker.model.radii)} robot spheres, {len(world.target.radii)} object spheres)")
    t = time.perf_counter()
    T, log_prob, source = grasp_candidates(args, obj, world)
    seconds_grasps = time.perf_counter() - t
    print(f"grasps: {source}")
    ik = ik_sampler(args.robot)
    reach = reach_grasps(world, T, log_prob, ik_sampler=ik, n_ik=args.n_ik, pregrasp=args.pregrasp, seed=args.seed)
    print(f"IK: {reach.ik}{'' if ik else ' (no pretrained IKSampler is shipped for ' + args.robot + ')'}")
    if args.physics:
        t = time.perf_counter()
        held = grasps.evaluate(obj, T[reach.index], world.mount.gripper, progress=False)
        reach = reach.select(held, "physics", time.perf_counter() - t)
    report(reach, seconds_grasps, grasps.get_gripper(world.mount.gripper).tcp_offset)
    out = {"counts": reach.counts, "reach": reach, "world": world, "grasps": T, "log_prob": log_prob,
           "solved": False}
    if len(reach) == 0:
        print("no grasp survived every stage: nothing to plan to")
        return out
    planned = plan_grasp(world, reach, planner="RRTConnect", time_limit=args.time_limit, seed=args.seed)
    for k, res in enumerate(planned.results):
        print(f"plan to goal #{k} (RRT-Connect, from the ready configuration to the pre-grasp): "
              f"{'solved' if res.solved else 'not solved'} in {res.time_s:.2f} s, {res.checks} states checked")
    if planned.solved:
        print(f"path: {len(planned.path)} waypoints, the last the approach to grasp #{planned.rank}")
    out.update(solved=planned.solved, rank=planned.rank, path=planned.path, plans=planned.results)
    print(f"total {time.perf_counter() - t0:.1f} s")
    return out


if __name__ == "__main__":
    sys.exit(0 if main()["solved"] else 1)
