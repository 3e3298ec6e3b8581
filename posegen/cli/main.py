"""The ``posegen`` command: train, sample, eval, plot, data, ik, grasps.

Each subcommand is a module with ``add_parser(subparsers)`` and ``run(args)`` (:data:`COMMANDS`); flags shared
by several of them, with one meaning each, live in :mod:`.options`. Every command sets torch's CPU threads
(``--threads``, default :func:`.options.default_threads`).

Errors are one line on stderr naming the problem, with exit code 2 for usage and config errors (unknown
config key, bad manifold spec, missing input file) and 1 for failures while running (data that do not
fit, a diverged training); ``--debug`` adds the traceback. Ctrl-C exits with 130.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from typing import List, Optional

from .. import __version__
from ..config import ConfigError
from . import data, evaluate, grasps, ik, plot, sample, train
from .common import UsageError
from .options import EXIT_INTERRUPT, EXIT_RUNTIME, EXIT_USAGE, Parser, set_threads

#: the subcommand modules, in the order of ``posegen --help``
COMMANDS = (train, sample, evaluate, plot, data, ik, grasps)

def build_parser() -> Parser:
    parser = Parser(prog="posegen", description="Learn densities of robot poses and joint configurations on "
                    "product manifolds (R^d x tori x spheres / SO3), sample and score them.",
                    epilog="Example: posegen train configs/default.yaml --out runs/default")
    parser.add_argument("--version", action="version", version=f"posegen {__version__}")
    parser.add_argument("--debug", action="store_true", default=False, help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    sub.required = True
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _dispatch(args) -> int:
    try:
        set_threads(getattr(args, "threads", None))
    except ValueError as e:
        raise UsageError(str(e)) from None
    return args.run(args)


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
    action = getattr(args, f"{args.command}_command", None)   # data / ik / grasps have actions
    name = "posegen " + args.command + (f" {action}" if action else "")
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
