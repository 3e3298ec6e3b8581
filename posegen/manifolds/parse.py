"""Build a product manifold from a spec string such as ``"R3 x T7 x S3"``."""

from __future__ import annotations

import re

from .base import Manifold
from .euclidean import Euclidean
from .product import Product
from .sphere import SO3, Sphere
from .torus import Torus

ACCEPTED = ("R<d> (Euclidean R^d)", "T<n> (n angles, a torus)", "S1 (alias of T1)",
            "S<d> (sphere S^d in R^(d+1))", "SO3 (rotations as xyzw unit quaternions, q ~ -q)")


def _accepted() -> str:
    return (f"accepted factors: {', '.join(ACCEPTED)}, joined by ' x ', with ^k to repeat "
            f"(e.g. 'R3 x T7 x S3')")


_TOKEN = re.compile(r"^(SO3|R(\d+)|T(\d+)|S(\d+))(?:\^(\d+))?$")


def _factor(tok: str, m: re.Match) -> Manifold:
    if m.group(1) == "SO3":
        return SO3()
    if m.group(2) is not None:
        return Euclidean(int(m.group(2)))
    if m.group(3) is not None:
        return Torus(int(m.group(3)))
    d = int(m.group(4))
    return Torus(1) if d == 1 else Sphere(d)


def parse(spec) -> Product:
    """Parse a manifold spec into a :class:`Product` (always a product, possibly of one factor).

    Factors are separated by ``x`` (or ``×``, ``*``); ``^k`` repeats a factor k times::

        parse("R3 x T7 x S3")      # position, 7 joint angles, a quaternion on S^3
        parse("R3 x T8 x S3^6")    # the CNFM paper's robot manifold
        parse("S2"); parse("R3 x SO3"); parse("R1 x S1")

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
    factors = []
    for tok in tokens:
        m = _TOKEN.match(tok)
        if m is None:
            raise ValueError(f"unknown manifold factor {tok!r} in spec {spec!r}; {_accepted()}")
        if any(g is not None and int(g) < 1 for g in m.group(2, 3, 4)):
            raise ValueError(f"factor {tok!r} in spec {spec!r} has dimension 0; {_accepted()}")
        reps = int(m.group(5)) if m.group(5) else 1
        if reps < 1:
            raise ValueError(f"repetition must be >= 1 in {tok!r} in spec {spec!r}; {_accepted()}")
        factors += [_factor(tok, m) for _ in range(reps)]
    return Product(*factors)
