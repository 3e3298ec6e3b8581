r"""Sphere tables: a robot's collision geometry as capsules and spheres fixed in link frames, and their YAML.

A table (:class:`SphereTable`) lists :class:`Capsule` entries (a segment ``a -> b`` in a link frame inflated by
a radius; ``b`` omitted: a sphere), optionally the link pairs never checked for self-collision
(``disable_collisions``, as in an SRDF, each with its reason) and each link's measured surface error
(``surface_error``: the largest distance from the link's collision surface to its spheres, m; what a
conservative model inflates by). The YAML format::

    robot: panda
    capsules:
      - {link: panda_link1, a: [0.0, 0.0, -0.19], b: [0.0, 0.0, 0.0], radius: 0.075}
      - {link: panda_hand, a: [0.0, 0.0, 0.03], radius: 0.04}
    disable_collisions:              # optional
      - [panda_link0, panda_link1, adjacent]
    surface_error: {panda_hand: 0.004}   # optional, metres

Built-in robots ship one next to their URDF (``posegen/robots/descriptions/<name>_spheres.yaml``); tables
fitted to a description's collision geometry come from :func:`posegen.robots.autofit.fit_sphere_table`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import torch
import yaml

from ..atomic import atomic_open
from .descriptions import BUILTIN_ROBOTS, builtin_spheres_text

__all__ = ["Capsule", "SphereTable", "load_sphere_table", "parse_sphere_table", "sphere_table_yaml",
           "save_sphere_table", "capsule_spheres", "read_yaml"]

REASONS = ("adjacent", "default", "never", "always", "srdf", "user")


@dataclass(frozen=True)
class Capsule:
    """The segment ``a -> b`` (m, in the frame of ``link``) inflated by ``radius``; ``b`` None: a sphere."""

    link: str
    a: Tuple[float, float, float]
    radius: float
    b: Optional[Tuple[float, float, float]] = None

    def __post_init__(self):
        a = tuple(float(v) for v in self.a)
        b = a if self.b is None else tuple(float(v) for v in self.b)
        if len(a) != 3 or len(b) != 3 or not all(math.isfinite(v) for v in a + b):
            raise ValueError(f"Capsule on {self.link!r}: a and b must be 3 finite numbers, got a={self.a}, b={self.b}")
        if not (math.isfinite(float(self.radius)) and float(self.radius) > 0):
            raise ValueError(f"Capsule on {self.link!r}: radius must be finite and > 0, got {self.radius!r}")
        object.__setattr__(self, "a", a)
        object.__setattr__(self, "b", b)
        object.__setattr__(self, "radius", float(self.radius))

    @property
    def length(self) -> float:
        return math.dist(self.a, self.b)


@dataclass(frozen=True)
class SphereTable:
    """A robot's collision capsules.

    ``robot`` (a name, for messages), ``capsules``, ``source`` (file or origin), ``disabled``: link pairs
    ``(link_a, link_b, reason)`` never checked for self-collision, ``surface_error``: ``{link: metres}``, the
    measured distance from each link's collision surface to its spheres (empty for hand-made tables),
    ``header``: comment lines written above the YAML.
    """

    robot: str
    capsules: Tuple[Capsule, ...]
    source: str = "<table>"
    disabled: Tuple[Tuple[str, str, str], ...] = ()
    surface_error: Dict[str, float] = field(default_factory=dict)
    header: Tuple[str, ...] = ()

    @property
    def links(self) -> Tuple[str, ...]:
        """Links that carry capsules, in table order."""
        return tuple(dict.fromkeys(c.link for c in self.capsules))


def _parse_disabled(data, source: str) -> Tuple[Tuple[str, str, str], ...]:
    out = []
    for i, row in enumerate(data or ()):
        if not (isinstance(row, (list, tuple)) and len(row) in (2, 3) and all(isinstance(v, str) for v in row)):
            raise ValueError(f"{source}: disable_collisions entry {i} must be [link_a, link_b(, reason)], got {row!r}")
        out.append((row[0], row[1], row[2] if len(row) == 3 else "user"))
    return tuple(out)


def parse_sphere_table(data, source: str = "<table>") -> SphereTable:
    """A :class:`SphereTable` from parsed YAML ``data`` (see the module docstring); ValueError naming
    ``source`` and the bad entry otherwise."""
    if not isinstance(data, dict) or not isinstance(data.get("capsules"), list) or not data["capsules"]:
        raise ValueError(f"{source}: a collision table needs a non-empty list 'capsules' of "
                         f"{{link, a, radius[, b]}} entries, got {type(data).__name__}")
    unknown = set(data) - {"robot", "capsules", "disable_collisions", "surface_error"}
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {sorted(unknown)}; a table has robot, capsules, "
                         f"disable_collisions, surface_error")
    caps = []
    for i, c in enumerate(data["capsules"]):
        if not isinstance(c, dict) or not {"link", "a", "radius"} <= set(c) or set(c) - {"link", "a", "b", "radius"}:
            raise ValueError(f"{source}: capsule {i} must have keys link, a, radius and optionally b; got {c!r}")
        caps.append(Capsule(str(c["link"]), tuple(c["a"]), c["radius"], None if c.get("b") is None else tuple(c["b"])))
    err = data.get("surface_error") or {}
    if not isinstance(err, dict) or not all(isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
                                            for v in err.values()):
        raise ValueError(f"{source}: surface_error must map link names to finite metres >= 0, got {err!r}")
    return SphereTable(str(data.get("robot", "")), tuple(caps), source,
                       _parse_disabled(data.get("disable_collisions"), source),
                       {str(k): float(v) for k, v in err.items()})


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)     # libyaml: a built-in table parses 50x faster


def read_yaml(text: str):
    """``yaml.safe_load`` through libyaml when PyYAML has it (same results, tables of 1000s of entries)."""
    return yaml.load(text, Loader=_LOADER)


@functools.lru_cache(maxsize=None)
def _builtin_table(name: str) -> SphereTable:
    return parse_sphere_table(read_yaml(builtin_spheres_text(name)), f"<built-in {name} spheres>")


def load_sphere_table(robot) -> SphereTable:
    """The collision table of ``robot``: a built-in name, a :class:`~posegen.robots.Robot` loaded from a
    built-in, a YAML file path, or a :class:`SphereTable` / sequence of :class:`Capsule` (returned as a table).

    Raises:
        ValueError: a robot without a shipped table, or a malformed file.
    """
    if isinstance(robot, SphereTable):
        return robot
    if isinstance(robot, (list, tuple)) and robot and all(isinstance(c, Capsule) for c in robot):
        return SphereTable("", tuple(robot))
    if hasattr(robot, "spec"):
        ref = robot.spec["robot"]
        if ref not in BUILTIN_ROBOTS:
            raise ValueError(f"robot {robot.name!r} ({ref}) has no built-in sphere table; fit one to its collision "
                             f"geometry (posegen.robots.autofit.fit_sphere_table) or pass spheres= (a YAML file)")
        robot = ref
    if isinstance(robot, str) and robot in BUILTIN_ROBOTS:
        return _builtin_table(robot)
    path = Path(robot) if isinstance(robot, (str, Path)) else None
    if path is None or path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
        raise ValueError(f"sphere table must be a built-in robot name ({', '.join(sorted(BUILTIN_ROBOTS))}), a "
                         f"YAML file, a SphereTable or a list of Capsule; got {robot!r}")
    return parse_sphere_table(read_yaml(path.read_text(encoding="utf-8")), str(path))


def _fmt(v: Sequence[float]) -> str:
    return "[" + ", ".join(f"{float(x):.6g}" for x in v) + "]"


def sphere_table_yaml(table: SphereTable) -> str:
    """The YAML text of ``table`` (the format of the built-in ``*_spheres.yaml`` files, one entry a line;
    numbers to 6 significant digits, micrometres at the sizes of robot links)."""
    lines = [f"# {h}" if h else "#" for h in table.header]
    lines += [f"robot: {table.robot}", "capsules:"]
    for c in table.capsules:
        b = "" if c.b == c.a else f", b: {_fmt(c.b)}"
        lines.append(f"  - {{link: {c.link}, a: {_fmt(c.a)}{b}, radius: {c.radius:.6g}}}")
    if table.disabled:
        lines.append("disable_collisions:")
        lines += [f"  - [{a}, {b}, {why}]" for a, b, why in table.disabled]
    if table.surface_error:
        lines.append("surface_error: {" + ", ".join(f"{k}: {v:.6g}" for k, v in table.surface_error.items()) + "}")
    return "\n".join(lines) + "\n"


def save_sphere_table(table: SphereTable, path) -> Path:
    """Write ``table`` as YAML to ``path`` (atomically: the file is complete or absent); returns the path."""
    path = Path(path)
    text = sphere_table_yaml(table)
    parse_sphere_table(read_yaml(text), str(path))            # what is written reads back
    with atomic_open(path, "w", mkdir=True) as f:
        f.write(text)
    return path


def capsule_spheres(capsules: Sequence[Capsule], spacing: float = 0.5, conservative: bool = False):
    """Spheres covering ``capsules``: ``(centers (S, 3), radii (S,), owner (S,))`` float64 / long.

    Each capsule of radius ``r`` and length ``L`` gets ``ceil(L / (spacing r)) + 1`` spheres evenly from ``a``
    to ``b`` (one for a sphere), of radius ``r`` (inside the capsule; the waists between neighbours miss at
    most ``r - sqrt(r^2 - s^2 / 4)`` for the actual spacing ``s``) or, ``conservative``, ``sqrt(r^2 + s^2 / 4)``
    (covering the capsule). ``owner`` is the capsule index of each sphere.
    """
    if not (math.isfinite(spacing) and spacing > 0):
        raise ValueError(f"spacing must be > 0 (a fraction of each capsule's radius), got {spacing!r}")
    centers, radii, owner = [], [], []
    for i, c in enumerate(capsules):
        n = int(math.ceil(c.length / (spacing * c.radius) - 1e-9)) + 1 if c.length > 0 else 1
        t = torch.linspace(0.0, 1.0, n, dtype=torch.float64) if n > 1 else torch.zeros(1, dtype=torch.float64)
        a, b = torch.tensor(c.a, dtype=torch.float64), torch.tensor(c.b, dtype=torch.float64)
        centers.append(a + t[:, None] * (b - a))
        s = c.length / (n - 1) if n > 1 else 0.0
        r = math.sqrt(c.radius ** 2 + s ** 2 / 4) if conservative else c.radius
        radii.append(torch.full((n,), r, dtype=torch.float64))
        owner.append(torch.full((n,), i, dtype=torch.long))
    return torch.cat(centers), torch.cat(radii), torch.cat(owner)
