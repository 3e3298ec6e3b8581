r"""Which link pairs of a robot are checked for self-collision: the rules of MoveIt's setup assistant.

A pair of links (both carrying collision spheres) is *disabled*, with its reason, when

* ``adjacent``: the links are rigidly joined (only fixed joints between them) or joined by one movable joint,
  skipping links without geometry (MoveIt: "Adjacent Links");
* ``default``: they touch at the default configuration (:func:`posegen.robots.collision.ready_configuration`:
  a built-in's ready pose, else the middle of the limits): the geometry overlaps there by construction;
* ``always``: they touch in at least 95 % of ``n_samples`` uniform configurations;
* ``never``: they never come within ``never_margin`` (m) of each other in ``n_samples`` uniform
  configurations (MoveIt's default density is 10000 samples; ``n_samples=0`` skips the last two rules);
* ``srdf``: listed in an SRDF's ``<disable_collisions link1= link2= reason=/>`` (:func:`read_srdf_disabled`).

The result is a tuple ``((link_a, link_b, reason), ...)`` that sphere tables store (``disable_collisions``).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, FrozenSet, List, Sequence, Tuple

import torch

__all__ = ["link_bodies", "adjacent_pairs", "read_srdf_disabled", "link_pair_clearance", "disabled_link_pairs"]

Pair = FrozenSet[str]


def link_bodies(description, links: Sequence[str]) -> Dict[str, str]:
    """``{link: body}``: the body of a link is its highest ancestor reached through fixed joints only (the
    links of one body never move relative to each other)."""
    out = {}
    for lk in links:
        body = lk
        j = description.joint_to(body)
        while j is not None and not j.movable:
            body = j.parent
            j = description.joint_to(body)
        out[lk] = body
    return out


def adjacent_pairs(description, links: Sequence[str]) -> List[Pair]:
    """Pairs of ``links`` on one body, or on two bodies joined by one movable joint once the bodies without
    any of ``links`` are skipped (a link's geometric parent body is the nearest body above it that has)."""
    body = link_bodies(description, links)
    with_geometry = set(body.values())
    members: Dict[str, List[str]] = {}
    for lk, b in body.items():
        members.setdefault(b, []).append(lk)
    pairs = set()
    for b, ls in members.items():
        pairs |= {frozenset((x, y)) for i, x in enumerate(ls) for y in ls[i + 1:]}
        j, parent = description.joint_to(b), None
        while j is not None:
            up = link_bodies(description, [j.parent])[j.parent]
            if up in with_geometry:
                parent = up
                break
            j = description.joint_to(up)
        if parent is not None:
            pairs |= {frozenset((x, y)) for x in ls for y in members[parent]}
    return sorted(pairs, key=sorted)


def read_srdf_disabled(srdf) -> Tuple[Tuple[str, str, str], ...]:
    """The ``<disable_collisions link1= link2= reason=/>`` entries of an SRDF (a path or its XML text) as
    ``(link1, link2, "srdf")`` (the SRDF's own reason is dropped: Adjacent, Default, Never, ...)."""
    text = Path(srdf).read_text(encoding="utf-8") if not str(srdf).lstrip().startswith("<") else str(srdf)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ValueError(f"srdf: not valid XML ({e})") from None
    out = []
    for el in root.iter("disable_collisions"):
        a, b = el.get("link1"), el.get("link2")
        if not a or not b:
            raise ValueError(f"srdf: <disable_collisions> needs link1 and link2, got {dict(el.attrib)}")
        out.append((a, b, "srdf"))
    return tuple(out)


def link_pair_clearance(centers: torch.Tensor, radii: torch.Tensor, link_index: torch.Tensor,
                        pairs: Sequence[Tuple[int, int]]) -> torch.Tensor:
    """``(..., P)``: the smallest gap between the spheres of link ``a`` and those of link ``b`` for each of
    ``pairs`` (link indices), from sphere centres ``(..., S, 3)``, radii ``(S,)`` and ``link_index (S,)``."""
    out = []
    for a, b in pairs:
        ia, ib = (link_index == a).nonzero().flatten(), (link_index == b).nonzero().flatten()
        d = torch.cdist(centers[..., ia, :], centers[..., ib, :]) - radii[ia, None] - radii[None, ib]
        out.append(d.flatten(-2).amin(-1))
    return torch.stack(out, -1) if out else centers.new_zeros((*centers.shape[:-2], 0))


def disabled_link_pairs(model, default_q: torch.Tensor, *, n_samples: int = 0, seed: int = 0,
                        never_margin: float = 0.01, srdf=None, chunk: int = 64
                        ) -> Tuple[Tuple[str, str, str], ...]:
    """MoveIt's disabled pairs (module docstring) for ``model``, any object with ``robot``, ``links``,
    ``link_index (S,)``, ``radii (S,)`` and ``sphere_centers(q) -> (..., S, 3)`` (a
    :class:`~posegen.robots.collision.CollisionModel`). ``default_q (dof,)``; ``n_samples`` uniform
    configurations (seeded by ``seed``) for the ``always`` / ``never`` rules; ``srdf`` a path or XML text."""
    if not (isinstance(n_samples, int) and n_samples >= 0):
        raise ValueError(f"n_samples must be an int >= 0, got {n_samples!r}")
    links = list(model.links)
    out: Dict[Pair, str] = {}
    for p in adjacent_pairs(model.robot.description, links):
        out[p] = "adjacent"
    if srdf is not None:
        for a, b, why in read_srdf_disabled(srdf):
            out.setdefault(frozenset((a, b)), why)
    todo = [(i, j) for i in range(len(links)) for j in range(i + 1, len(links))
            if frozenset((links[i], links[j])) not in out]
    if todo:
        c0 = model.sphere_centers(default_q.to(model.radii))
        gap0 = link_pair_clearance(c0, model.radii, model.link_index, todo)
        for (i, j), g in zip(todo, gap0.tolist()):
            if g < 0:
                out[frozenset((links[i], links[j]))] = "default"
        todo = [(i, j) for i, j in todo if frozenset((links[i], links[j])) not in out]
    if todo and n_samples:
        lim = model.robot.joint_limits.to(model.radii)
        g = torch.Generator().manual_seed(int(seed))
        hits = torch.zeros(len(todo), dtype=torch.long)
        near = torch.zeros(len(todo), dtype=torch.bool)
        for start in range(0, n_samples, chunk):
            n = min(chunk, n_samples - start)
            u = torch.rand(n, model.robot.dof, generator=g, dtype=torch.float64).to(lim)
            gap = link_pair_clearance(model.sphere_centers(lim[:, 0] + u * (lim[:, 1] - lim[:, 0])),
                                      model.radii, model.link_index, todo)
            hits += (gap < 0).sum(0).cpu()
            near |= (gap < never_margin).any(0).cpu()
        for k, (i, j) in enumerate(todo):
            if int(hits[k]) >= math.ceil(0.95 * n_samples):
                out[frozenset((links[i], links[j]))] = "always"
            elif not bool(near[k]):
                out[frozenset((links[i], links[j]))] = "never"
    order = {lk: i for i, lk in enumerate(links)}
    rows = [tuple(sorted(p, key=lambda x: order.get(x, len(order)))) + (why,) for p, why in out.items()]
    return tuple(sorted(rows, key=lambda r: (order.get(r[0], 1 << 30), order.get(r[1], 1 << 30))))
