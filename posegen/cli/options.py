"""What every ``posegen`` subcommand shares: the parser class (one-line errors), and the flags whose meaning is
the same everywhere (``--debug``, ``--device``, ``--threads``, ``--method`` / ``--solver-steps``).

One name, one meaning: ``--steps`` is always optimiser steps (``ik train``), ``--solver-steps`` always ODE
integrator steps (``sample``, ``eval``), ``--max-minutes`` always a training time budget.
"""

from __future__ import annotations

import argparse
import os

import torch

__all__ = ["EXIT_RUNTIME", "EXIT_USAGE", "EXIT_INTERRUPT", "Parser", "debug_flag", "device_flag", "solver_flags",
           "default_threads", "set_threads"]

EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPT = 1, 2, 130
SOLVER_HELP = "ODE integrator (euler, midpoint, rk4, dopri5, ...; default: the model's, rk4)"


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``posegen train: error: ... (see posegen train --help)``."""

    def error(self, message):  # noqa: D102 - argparse API
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def debug_flag(p) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the full traceback on errors")


def default_threads() -> int:
    """Torch CPU threads when ``--threads`` is not given: 1 on machines of up to 4 cores, else a quarter of
    them, at most 4. posegen's networks are small (256 wide): on this project's shared 2-core CPU, 400 demo
    training steps took 9 s on one thread and 25-48 s on torch's default of all cores when another job ran
    (threads wait on each other for every small matrix product); more threads pay only for wide models or
    big batches on idle many-core machines."""
    cores = os.cpu_count() or 1
    return 1 if cores <= 4 else min(4, cores // 4)


def set_threads(n) -> int:
    """Set torch's CPU threads to ``n`` (None: :func:`default_threads`); returns the number set."""
    n = default_threads() if n is None else int(n)
    if n < 1:
        raise ValueError(f"--threads must be >= 1, got {n}")
    torch.set_num_threads(n)
    return n


def device_flag(p) -> None:
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="where to compute (default: cuda when available for train, else the checkpoint's)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help=f"CPU threads for torch (default {default_threads()} here: 1 up to 4 cores, fastest for "
                        f"posegen's small networks and on busy machines)")


def solver_flags(p) -> None:
    p.add_argument("--method", help=SOLVER_HELP)
    p.add_argument("--solver-steps", type=int, help="integrator steps (default: the model's)")
