"""Build a product manifold from a spec string such as ``"R3 x T7 x S3"``."""

from __future__ import annotations

import re

from .base import Manifold
from .euclidean import Euclidean
from .interval import Interval
from .product import Product
from .sphere import SO3, Sphere
from .torus import Torus
import torch

ACCEPTED = ("R<d> (Euclidean R^d)", "T<n> (n angles, a torus)", "S1 (alias of T1)",
            "S<d> (sphere S^d in R^(d+1); S<d>[fourier=K] adds K octaves of Fourier features)", "SO3 (rotations as xyzw unit quaternions, q ~ -q)",
            "I<d> (d joints with limits; limits= or I<d>[lo:hi,...])")


def _accepted() -> str:
    return (f"accepted factors: {', '.join(ACCEPTED)}, joined by ' x ', with ^k to repeat "
            f"(e.g. 'R3 x T7 x S3')")


_TOKEN = re.compile(r"^(SO3|R(\d+)|T(\d+)|S(\d+)(?:\[fourier=(\d+)\])?|I(\d+)(?:\[([^\]]*)\])?)(?:\^(\d+))?$")


def _interval(tok: str, spec: str, d: int, box, limits) -> Interval:
    """An ``I<d>`` factor from its ``[lo:hi,...]`` text or the next ``d`` rows of ``limits``."""
    if box is not None:
        try:
            pairs = [tuple(float(v) for v in item.split(":")) for item in box.split(",")]
        except ValueError:
            pairs = None
        if not pairs or any(len(p) != 2 for p in pairs) or len(pairs) != d:
            raise ValueError(f"factor {tok!r} in spec {spec!r}: limits must be {d} pairs 'lo:hi' separated by "
                             f"commas, e.g. I2[-1.5:1.5,0:3.75]")
        return Interval([p[0] for p in pairs], [p[1] for p in pairs])
    if limits is None or len(limits) < d:
        have = 0 if limits is None else len(limits)
        raise ValueError(f"factor {tok!r} in spec {spec!r} needs joint limits: pass limits= with a [lo, hi] row "
                         f"per interval coordinate (rows left: {have}, needed: {d}), write {tok}[lo:hi,...], or "
                         f"build the manifold from a robot (robot.manifold)")
    rows = [limits.pop(0) for _ in range(d)]
    return Interval([r[0] for r in rows], [r[1] for r in rows])


def _factor(tok: str, m: re.Match) -> Manifold:
    if m.group(1) == "SO3":
        return SO3()
    if m.group(2) is not None:
        return Euclidean(int(m.group(2)))
    if m.group(3) is not None:
        return Torus(int(m.group(3)))
    d = int(m.group(4))
    fourier = int(m.group(5)) if m.group(5) is not None else 0
    if fourier and d == 1:
        raise ValueError(f"factor {tok!r}: Fourier features are an option of spheres S^d with d >= 2; S1 is an angle")
    return Torus(1) if d == 1 else Sphere(d, fourier=fourier)


def parse(spec, limits=None) -> Product:
    """Parse a manifold spec into a :class:`Product` (always a product, possibly of one factor).

    Factors are separated by ``x`` (or ``×``, ``*``); ``^k`` repeats a factor k times::

        parse("R3 x T7 x S3")      # position, 7 joint angles, a quaternion on S^3
        parse("R3 x T8 x S3^6")    # the CNFM paper's robot manifold
        parse("S2"); parse("R3 x SO3"); parse("R1 x S1")

    Joints with limits are ``I<d>`` factors (:class:`Interval`); their limits come with the token,
    ``"R3 x I2[-1.5:1.5,0:3.75]"`` (what ``repr`` prints), or from ``limits``, a ``(k, 2)`` array of
    ``[lo, hi]`` rows used in order by the bare ``I<d>`` tokens (``parse("I7", limits=robot.joint_limits)``).

    ``repr`` of the result prints the spec back. Unknown tokens raise :class:`ValueError` listing the
    accepted ones. A Manifold passed in is wrapped as a Product unchanged.
    """
    if isinstance(spec, Product):
        return spec
    if isinstance(spec, Manifold):
        return Product(spec)
    if not isinstance(spec, str):
        raise TypeError(f"manifold spec must be a string, got {type(spec).__name__}")
    tokens = [t.strip() for t in re.split(r"\s+[x×*]\s+|\s*[×*]\s*", spec.strip())]
    if not spec.strip() or any(not t for t in tokens):
        raise ValueError(f"empty manifold spec {spec!r}; {_accepted()}")
    rows = None
    if limits is not None:
        lim = torch.as_tensor(limits, dtype=torch.float64)
        if lim.dim() != 2 or lim.shape[1] != 2:
            raise ValueError(f"limits must have shape (k, 2), one [lo, hi] row per interval coordinate, got "
                             f"{tuple(lim.shape)}")
        rows = lim.tolist()
    factors = []
    for tok in tokens:
        m = _TOKEN.match(tok)
        if m is None:
            raise ValueError(f"unknown manifold factor {tok!r} in spec {spec!r}; {_accepted()}")
        if any(g is not None and int(g) < 1 for g in m.group(2, 3, 4, 6)):
            raise ValueError(f"factor {tok!r} in spec {spec!r} has dimension 0; {_accepted()}")
        reps = int(m.group(8)) if m.group(8) else 1
        if reps < 1:
            raise ValueError(f"repetition must be >= 1 in {tok!r} in spec {spec!r}; {_accepted()}")
        if m.group(6) is not None:
            factors += [_interval(tok, spec, int(m.group(6)), m.group(7), rows) for _ in range(reps)]
        else:
            factors += [_factor(tok, m) for _ in range(reps)]
    if rows:
        raise ValueError(f"limits has {len(rows)} rows more than the interval coordinates of {spec!r} use")
    return Product(*factors)
