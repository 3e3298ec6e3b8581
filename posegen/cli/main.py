"""The ``posegen`` command: train, sample, eval, plot, data inspect / generate-panda.

Errors are one line on stderr naming the problem, with exit code 2 for usage and config errors (unknown
config key, bad manifold spec, missing input file) and 1 for failures while running (data that do not
fit, a diverged training); ``--debug`` adds the traceback. Ctrl-C exits with 130.
"""

from __future__ import annotations

import argparse
import sys
import traceback
import warnings
from typing import List, Optional

from ..config import ConfigError
from .common import UsageError

EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPT = 1, 2, 130
SOLVER_HELP = "ODE integrator (euler, midpoint, rk4, dopri5, ...; default: the model's, rk4)"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``posegen train: error: ... (see posegen train --help)``."""

    def error(self, message):  # noqa: D102 - argparse API
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _debug_flag(p) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback on errors")


def _device_flag(p) -> None:
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where to compute (default: cuda when available for train, else the checkpoint's)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="CPU threads for torch (default: torch's choice; 1 is fastest on a busy shared machine)")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="posegen", description="Learn densities of robot poses and joint configurations on "
                     "product manifolds (R^d x tori x spheres / SO3), sample and score them.",
                     epilog="Example: posegen train configs/default.yaml --out runs/default")
    parser.add_argument("--version", action="version", version=f"posegen {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("train", help="train a flow from a YAML config",
                       description="Train a flow from a YAML config; writes model.pt, config.yaml, "
                       "metrics.jsonl and plots/ to the run folder.")
    p.add_argument("config", metavar="CONFIG", help="YAML config (see configs/)")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a config key (train.steps=100, or the short form steps=100); repeatable")
    p.add_argument("--out", metavar="DIR", help="run folder (default: runs/<config name>)")
    _device_flag(p)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its ckpt.pt")
    _debug_flag(p)

    p = sub.add_parser("sample", help="draw samples from a trained flow into an HDF5 file",
                       description="Draw samples from a trained flow and write them in posegen's HDF5 layout.")
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="model.pt (or ckpt.pt) written by posegen train")
    p.add_argument("-n", type=int, default=None, help="number of samples (default: the config's sample.n)")
    p.add_argument("-o", "--out", required=True, metavar="OUT.h5", help="output file (replaced if it exists)")
    p.add_argument("--condition", metavar="X,Y,Z", help="one condition vector for all samples (conditional flows)")
    p.add_argument("--condition-file", metavar="F", help="condition rows (CSV/TSV/NPY or posegen .h5): one row for "
                   "all samples, or one per sample")
    p.add_argument("--method", help=SOLVER_HELP)
    p.add_argument("--steps", type=int, help="integrator steps (default: the model's)")
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the config's sample.seed, 0)")
    p.add_argument("--chunk-size", type=int, default=None, help="samples integrated at once (memory bound)")
    p.add_argument("--quat-order", choices=("xyzw", "wxyz"), default="xyzw",
                   help="how to store quaternions (default xyzw; wxyz for MuJoCo/PyTorch3D)")
    p.add_argument("--config", help="config to read defaults from (default: config.yaml beside the checkpoint)")
    _device_flag(p)
    _debug_flag(p)

    p = sub.add_parser("eval", help="negative log-likelihood (nats, bits/dim) of held-out data",
                       description="Exact NLL of data under a trained flow: a table, then one JSON line.")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--data", required=True, metavar="FILE", help="data file, read with the config's data section")
    p.add_argument("--config", help="config whose data section reads FILE (default: config.yaml beside the "
                   "checkpoint; a posegen points file needs none)")
    p.add_argument("--split", choices=("test", "valid", "train"), default=None,
                   help="which split (default: the config's eval.split, else test if defined, else valid)")
    p.add_argument("--method", help=SOLVER_HELP)
    p.add_argument("--steps", type=int, help="integrator steps")
    p.add_argument("--divergence", choices=("exact", "hutchinson"), default=None, help="divergence estimator")
    p.add_argument("--max-points", type=int, default=None, help="score at most this many points (seeded subset)")
    _device_flag(p)
    _debug_flag(p)

    p = sub.add_parser("plot", help="PNG figures of samples against data (and training curves)",
                       description="Figures of a checkpoint (sampled) or a samples file against the data.")
    p.add_argument("input", metavar="CHECKPOINT|SAMPLES.h5")
    p.add_argument("--data", metavar="FILE", help="data to draw beside the samples (read with the config)")
    p.add_argument("--config", help="config (default: config.yaml beside the input)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: plots/ beside the input)")
    p.add_argument("--split", choices=("train", "valid", "test"), default=None,
                   help="data split to draw (default: the config's plot.split, train)")
    p.add_argument("-n", type=int, default=None, help="samples drawn from a checkpoint (default: plot.n)")
    p.add_argument("--seed", type=int, default=0, help="seed of those samples")
    _device_flag(p)
    _debug_flag(p)

    p = sub.add_parser("data", help="inspect data files, generate the Panda demo data")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION", parser_class=_Parser)
    dsub.required = True
    q = dsub.add_parser("inspect", help="keys, shapes, dtypes, demos, masks and fitting manifold tokens")
    q.add_argument("file", metavar="FILE")
    _debug_flag(q)
    q = dsub.add_parser("generate-panda", help="generate Franka Panda reach-and-grasp demos (robomimic layout)")
    q.add_argument("--out", required=True, help="output .hdf5 file")
    q.add_argument("--demos", type=int, default=300, help="demos to attempt (default 300)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--frames", type=int, default=None, help="nominal frames per demo (default: the generator's)")
    _debug_flag(q)
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
    _debug_flag(q)

    from .ik import add_parser as add_ik_parser  # posegen ik train / sample

    add_ik_parser(sub, _Parser, _debug_flag, _device_flag)
    return parser


def _dispatch(args) -> int:
    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            raise UsageError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)
    if args.command == "train":
        from .train import run
    elif args.command == "sample":
        from .sample import run
    elif args.command == "eval":
        from .evaluate import run
    elif args.command == "plot":
        from .plot import run
    elif args.command == "ik":
        from .ik import run
    elif args.data_command == "inspect":
        from .inspect import run_inspect as run
    elif args.data_command == "generate":
        from .datasets import run_generate_robot as run
    else:
        from .inspect import run_generate as run
    return run(args)


def _one_line(e: BaseException) -> str:
    msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    msg = " ".join(str(msg).split())
    return msg or type(e).__name__


def _warning_line(message, category, filename, lineno, file=None, line=None):
    print(f"posegen: warning: {_one_line(message) if isinstance(message, BaseException) else message}",
          file=sys.stderr, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors (already printed)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    name = "posegen " + args.command + (f" {args.data_command}" if args.command == "data" else "")
    with warnings.catch_warnings():
        warnings.showwarning = _warning_line
        try:
            return int(_dispatch(args) or 0)
        except KeyboardInterrupt:
            print(f"{name}: interrupted", file=sys.stderr, flush=True)
            return EXIT_INTERRUPT
        except Exception as e:  # noqa: BLE001 - the one place that turns errors into exit codes
            if args.debug:
                traceback.print_exc()
            code = EXIT_USAGE if isinstance(e, (ConfigError, FileNotFoundError)) else EXIT_RUNTIME
            print(f"{name}: error: {_one_line(e)}", file=sys.stderr, flush=True)
            return code


if __name__ == "__main__":
    sys.exit(main())
