"""The ``posegen`` command line (``posegen.cli.main:main``; also ``python -m posegen``).

Subcommands: ``train`` (YAML config -> run folder), ``sample``, ``eval``, ``plot``, ``data inspect`` and
``data generate-panda``. Each lives in its own module; ``main`` parses and maps errors to exit codes.
"""

from .main import build_parser, main

__all__ = ["main", "build_parser"]
