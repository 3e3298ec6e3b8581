"""Grasp candidates of an object from its geometry: a GraspSampler's draws, ranked by exact log-density and
checked in the MuJoCo shake test beside raw antipodal candidates.

The model is ``GraspSampler.pretrained("panda")`` when posegen ships its weights, a file of ``posegen grasps
train`` with ``--model``, or else (and with ``--fit``) a short fit here: a few procedural objects
(:func:`posegen.grasps.make_objects`, kinds whose convex decomposition is quick), antipodal candidates of each
labelled by the shake test, the model fitted on the successful ones. The object is a mesh (``--object``) or, by
default, a procedural object of a trained kind that the short fit never saw. Grasps are 4x4 transforms of the
Panda hand's grasp frame in the object's frame (ACRONYM's convention: z toward the fingers, x the closing axis).

Run (from the repository root; needs ``pip install 'posegen[grasps]'``)::

    python examples/grasp_candidates.py                        # without shipped weights: a short fit (*)
    python examples/grasp_candidates.py --quick                # a tiny fit (*)
    python examples/grasp_candidates.py --object mug.obj --scale 0.001 --quat-order wxyz
    python examples/grasp_candidates.py --model grasps.pt      # a model of posegen grasps train
    python examples/grasp_candidates.py --fit --save grasps.pt # fit here even if weights ship; keep the model

(*) Wall time on one thread of this project's shared 2-core CPU, under a load average of 6 (two training jobs
beside it): 164 s (labels 53 s, 1500 steps 85 s) and 31 s with ``--quick``; it prints its own timings.

The same from the command line: ``posegen grasps sample --object mug.obj -n 64 --rank --evaluate --out g.h5``.
From grasps to reachable joint goals and a planned motion: ``examples/grasp_and_plan.py``.
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from posegen.grasps import evaluate, load_object, make_objects, sample_antipodal
from posegen.rotations import rotmat_to_quat
from posegen.samplers import GraspSampler
from posegen.samplers.shipped import weights_path

#: kinds of the short fit: CoACD splits each in about a second or less (a mug: 17.7 s, benchmarks/notes/grasps.md)
FIT_KINDS = ["box", "cylinder", "sphere", "capsule", "bottle", "l_shape", "dumbbell"]
SMALL_MODEL = dict(points=256, hidden=128, depth=3, encoder_dim=32, encoder_hidden=64)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--object", help="the object's mesh (default: an unseen procedural object)")
    ap.add_argument("--scale", type=float, default=1.0, help="mesh units -> metres (default 1)")
    ap.add_argument("--target-kind", default="bottle", choices=FIT_KINDS, help="kind of the default object")
    ap.add_argument("--model", help="a GraspSampler file (posegen grasps train)")
    ap.add_argument("--fit", action="store_true", help="fit a small model here even if weights ship")
    ap.add_argument("--save", help="where to write the model fitted here")
    ap.add_argument("--per-kind", type=int, default=2, help="training objects per kind (default 2)")
    ap.add_argument("--per-object", type=int, default=32, help="labelled candidates per training object (32)")
    ap.add_argument("--steps", type=int, default=1500, help="training steps of the short fit (default 1500)")
    ap.add_argument("--candidates", type=int, default=64, help="grasps drawn (default 64)")
    ap.add_argument("--k", type=int, default=8, help="grasps shown and shaken, most probable first (default 8)")
    ap.add_argument("--no-evaluate", action="store_true", help="skip the shake test")
    ap.add_argument("--quat-order", default="xyzw", choices=["xyzw", "wxyz"], help="order of printed quaternions")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--quick", action="store_true", help="one object per kind, 24 candidates each, 300 steps")
    args = ap.parse_args(argv)
    if args.quick:
        args.per_kind, args.per_object, args.steps = 1, 24, 300
    return args


def training_set(args):
    """``per_kind`` procedural objects of each of :data:`FIT_KINDS` and their shake-tested antipodal grasps."""
    t0 = time.perf_counter()
    objects, grasps, held, total = [], [], 0, 0
    for obj, _ in make_objects(args.per_kind * len(FIT_KINDS), seed=args.seed, kinds=FIT_KINDS):
        cand = sample_antipodal(obj, args.per_object, seed=args.seed)
        ok = evaluate(obj, cand.transforms, progress=False)
        held, total = held + int(ok.sum()), total + len(ok)
        if ok.any():
            objects.append(obj)
            grasps.append(cand.transforms[ok])
    print(f"data: {len(objects)} procedural objects, {held} of {total} antipodal candidates hold in the shake test "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    return objects, grasps


def grasp_model(args) -> GraspSampler:
    if args.model:
        gs = GraspSampler.load(args.model)
        print(f"model: {args.model} ({gs.training.get('steps', '?')} training steps)")
        return gs
    if not args.fit and weights_path("grasp", "panda").is_file():
        gs = GraspSampler.pretrained("panda")
        print(f"model: pretrained panda ({gs.training.get('steps', '?')} training steps)")
        return gs
    objects, grasps = training_set(args)
    t0 = time.perf_counter()
    gs = GraspSampler(**SMALL_MODEL).fit(objects, grasps, steps=args.steps, batch_size=128, lr=2e-3, seed=args.seed,
                                         warmup=min(200, args.steps // 5))
    print(f"model: a short fit, {args.steps} steps in {time.perf_counter() - t0:.0f} s (the shipped model trains "
          f"for hours on 270 objects; this one shows the workflow, not its quality)", flush=True)
    if args.save:
        print(f"  saved {gs.save(args.save)}")
    return gs


def target_object(args):
    if args.object:
        return load_object(args.object, args.scale)
    n_train = args.per_kind * len(FIT_KINDS)     # objects cycle through the kinds: this index is unseen
    obj, _ = make_objects(n_train + FIT_KINDS.index(args.target_kind) + 1, seed=args.seed, kinds=FIT_KINDS)[-1]
    return obj


def show(T: torch.Tensor, lp: torch.Tensor, order: str) -> None:
    print(f"{'rank':>4s} {'log p':>8s} {'position (m)':>26s} {'quaternion ' + order:>34s} {'approach':>9s}")
    q = rotmat_to_quat(T[:, :3, :3], order)
    for i in range(len(T)):
        z = T[i, :3, 2]                                        # approach axis, in the object frame
        tilt = math.degrees(math.acos(max(-1.0, min(1.0, -float(z[2])))))
        print(f"{i + 1:4d} {float(lp[i]):8.2f} {str([round(float(v), 3) for v in T[i, :3, 3]]):>26s} "
              f"{str([round(float(v), 3) for v in q[i]]):>34s} {tilt:7.1f}d")
    print("(approach: angle between the gripper's approach axis and straight down in the object frame)")


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(1)     # small networks: one thread avoids threading overhead on a shared CPU
    gs = grasp_model(args)
    obj = target_object(args)
    print(f"\nobject: {obj.name}, extents {[round(float(e), 3) for e in obj.extents]} m")
    t0 = time.perf_counter()
    T = gs.sample(obj, args.candidates, seed=args.seed)
    lp = gs.log_prob(obj, T)
    best = torch.argsort(lp, descending=True)[: args.k]
    print(f"{args.candidates} grasps drawn and scored in {time.perf_counter() - t0:.2f} s; the {args.k} most "
          f"probable:")
    show(T[best], lp[best], args.quat_order)
    if args.no_evaluate:
        return
    held = evaluate(obj, T[best], gs.gripper, progress=False)
    print(f"\nshake test: {int(held.sum())} of the {args.k} most probable samples hold the {obj.name}", end="")
    try:
        raw = sample_antipodal(obj, args.k, gs.gripper, seed=args.seed).transforms
    except ValueError as e:
        print(f"; no antipodal candidate to compare ({e})")
        return
    print(f"; {int(evaluate(obj, raw, gs.gripper, progress=False).sum())} of {len(raw)} raw antipodal candidates")


if __name__ == "__main__":
    main()
