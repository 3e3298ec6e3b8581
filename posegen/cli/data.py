"""``posegen data inspect | generate-panda | generate``: look into data files, make demo data.

``inspect FILE`` prints keys, shapes, dtypes, demos and masks and the manifold tokens that fit each key;
``generate-panda`` writes the Franka Panda reach-and-grasp demos the README trains on; ``generate --robot``
writes seeded reach demos of any robot (robomimic layout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict

from ..data.generate import generate_panda_dataset
from ..data.generate_robot import generate_robot_dataset
from ..robots import builtin_names
from .common import UsageError
from .inspect import inspect_file
from .options import Parser, debug_flag


def run_inspect(args) -> int:
    inspect_file(args.file)
    return 0


def run_generate_panda(args) -> int:
    kw: Dict[str, Any] = {"n_demos": args.demos, "seed": args.seed, "verbose": True}
    if args.frames is not None:
        kw["frames"] = args.frames
    generate_panda_dataset(Path(args.out), **kw)
    return 0


def run_generate_robot(args) -> int:
    """``posegen data generate --robot NAME|PATH --out FILE``: reach demos of any robot (robomimic layout)."""
    robot = args.robot
    if robot not in builtin_names() and not Path(robot).is_file():
        raise UsageError(f"--robot {robot!r} is neither a built-in robot ({', '.join(builtin_names())}) nor a "
                         f"description file")
    kw: Dict[str, Any] = {"n_demos": args.demos, "seed": args.seed, "verbose": True, "ee_link": args.ee_link}
    if args.frames is not None:
        kw["frames"] = args.frames
    try:
        generate_robot_dataset(Path(args.out), robot, **kw)
    except ValueError as e:   # bad counts, unknown ee_link, a malformed description
        raise UsageError(str(e)) from None
    return 0


def run(args) -> int:
    """Run the action ``args.data_command``."""
    return {"inspect": run_inspect, "generate-panda": run_generate_panda,
            "generate": run_generate_robot}[args.data_command](args)


def add_parser(subparsers) -> None:
    """Register ``data`` and its actions on the ``posegen`` subparsers."""
    p = subparsers.add_parser("data", help="inspect data files, generate the Panda demo data")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=Parser)
    dsub.required = True
    q = dsub.add_parser("inspect", help="keys, shapes, dtypes, demos, masks and fitting manifold tokens")
    q.add_argument("file", metavar="FILE")
    debug_flag(q)
    q = dsub.add_parser("generate-panda", help="generate Franka Panda reach-and-grasp demos (robomimic layout)")
    q.add_argument("--out", required=True, help="output .hdf5 file")
    q.add_argument("--demos", type=int, default=300, help="demos to attempt (default 300)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--frames", type=int, default=None, help="nominal frames per demo (default: the generator's)")
    debug_flag(q)
    q = dsub.add_parser("generate", help="generate reach demos of any robot (robomimic layout)",
                        description="Seeded reach demos of a robot: min-jerk joint paths between configurations "
                        "inside the joint limits, with the end-effector pose from the robot's kinematics.")
    q.add_argument("--robot", required=True, metavar="NAME|PATH", help="built-in robot (panda, ur5e, iiwa14) or a "
                   "URDF/MJCF file")
    q.add_argument("--out", required=True, help="output .hdf5 file")
    q.add_argument("--demos", type=int, default=300, help="episodes (default 300)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--frames", type=int, default=None, help="nominal frames per episode (default 50)")
    q.add_argument("--ee-link", default=None, help="end-effector link (default: the robot's)")
    debug_flag(q)
    p.set_defaults(run=run)
