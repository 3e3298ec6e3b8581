"""Spheres of a robot placed by its forward kinematics, and its self-collision pairs: the collision model
given a sphere table (:mod:`.spheres`). Choosing or fitting the table is :mod:`.collision`'s job, so that the
fitter (:mod:`.autofit`, which measures self-collisions with this model) sits between the two.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch

from .descriptions import BUILTIN_ROBOTS
from .loader import as_robot
from .selfcollision import disabled_link_pairs
from .spheres import capsule_spheres, load_sphere_table

__all__ = ["SphereModel", "ready_configuration", "DEFAULT_INFLATION"]


DEFAULT_INFLATION = 0.25
"""Default growth of fitted spheres, as a fraction of their link's surface error (see the accuracy figures)."""


def ready_configuration(robot) -> torch.Tensor:
    """``(dof,)`` float64: the registry's ready configuration of a built-in robot (with its default end
    effector's chain), else the middle of the joint limits."""
    ref = robot.spec["robot"]
    ready = BUILTIN_ROBOTS[ref].ready if ref in BUILTIN_ROBOTS else ()
    if len(ready) == robot.dof:
        return torch.tensor(ready, dtype=torch.float64)
    return robot.joint_limits.mean(-1)


class _Placement:
    """Spheres ``local (S, 3)``, ``radii (S,)`` on ``links`` (``link_index (S,)``) placed by ``robot``'s FK."""

    def __init__(self, robot, links, link_index, local, radii):
        self.robot, self.links, self.link_index, self.local, self.radii = robot, links, link_index, local, radii

    def sphere_centers(self, q) -> torch.Tensor:
        F = self.robot.frames(q, self.links)
        T = torch.stack([F[n] for n in self.links], -3)[..., self.link_index, :3, :]     # (..., S, 3, 4)
        return (T[..., :3] @ self.local.unsqueeze(-1)).squeeze(-1) + T[..., 3]


class SphereModel:
    """Spheres of one robot placed by its forward kinematics, and its self-collision pairs.

    Args:
        robot: a :class:`~posegen.robots.Robot` or anything :func:`posegen.robots.load` takes (default the
            Panda).
        spheres: the sphere table (anything :func:`load_sphere_table` takes); default the built-in's.
            :class:`posegen.robots.collision.CollisionModel` also fits one to any robot's collision geometry.
        spacing: sphere spacing along a capsule, as a fraction of its radius (see :func:`capsule_spheres`).
        conservative: spheres that cover the collision surface (module docstring): capsule covers around their
            capsules, fitted spheres grown by their link's surface error (``inflation=1``).
        inflation: fraction of each link's measured surface error (fitted tables) added to its spheres; default
            ``DEFAULT_INFLATION`` (1 when ``conservative``); 0: the fitted spheres themselves, inside the geometry.
        srdf: an SRDF (path or XML text) whose ``disable_collisions`` pairs are never checked.
        self_samples: uniform configurations for MoveIt's ``always`` / ``never`` rules on top of the table's own
            ``disable_collisions`` (fitted tables carry them already; 0: adjacent and default rules only).
        dtype, device: of the sphere tensors and the computations (q is converted).

    Attributes:
        robot, table; ``links`` (names, in the order of ``link_index``), ``link_index (S,)``, ``local (S, 3)``
        centres in their link frames, ``radii (S,)``, ``owner (S,)`` capsule of each sphere, ``fixed (S,)``
        spheres on links no joint moves, ``disabled`` ``{frozenset({a, b}): reason}`` link pairs never checked,
        ``pairs (P, 2)`` self-collision sphere pairs.
    """

    def __init__(self, robot="panda", spheres=None, *, spacing: float = 0.5, conservative: bool = False,
                 inflation: Optional[float] = None, srdf=None, self_samples: int = 0,
                 dtype: torch.dtype = torch.float64, device=None, _pairs: bool = True):
        self.robot = robot = as_robot(robot, type(self).__name__)
        self.table = load_sphere_table(spheres if spheres is not None else robot)
        self.spacing, self.conservative = float(spacing), bool(conservative)
        self.dtype, self.device = dtype, torch.device(device or "cpu")
        caps = self.table.capsules
        unknown = sorted({c.link for c in caps} - set(robot.link_names))
        if unknown:
            raise ValueError(f"{self.table.source}: capsule link(s) {unknown} are not links of {robot.name!r} "
                             f"(its links: {', '.join(robot.link_names)})")
        self.links: Tuple[str, ...] = self.table.links
        centers, radii, owner = capsule_spheres(caps, spacing, conservative)
        if inflation is None:
            inflation = 1.0 if conservative else DEFAULT_INFLATION
        if not (math.isfinite(inflation) and inflation >= 0):
            raise ValueError(f"inflation must be a finite number >= 0 (a fraction of each link's surface error), "
                             f"got {inflation!r}")
        self.inflation = float(inflation)
        radii = radii + self.inflation * torch.tensor(
            [self.table.surface_error.get(caps[k].link, 0.0) for k in owner.tolist()], dtype=torch.float64)
        link_of_cap = torch.tensor([self.links.index(c.link) for c in caps], dtype=torch.long)
        self.owner = owner.to(self.device)
        self.link_index = link_of_cap[owner].to(self.device)
        self.local = centers.to(dtype=dtype, device=self.device)
        self.radii = radii.to(dtype=dtype, device=self.device)
        desc = robot.description
        moving = torch.tensor([any(j.movable for j in desc.path_joints(lk)) for lk in self.links])
        self.fixed = ~moving.to(self.device)[self.link_index]
        self._place = _Placement(robot, self.links, self.link_index, self.local, self.radii)
        self.disabled: Dict[frozenset, str] = {frozenset((a, b)): why for a, b, why in self.table.disabled}
        self.pairs = torch.zeros(0, 2, dtype=torch.long, device=self.device)
        if _pairs:
            self.disabled = self._disabled_pairs(caps, srdf, self_samples)
            self.pairs = self._sphere_pairs()

    def _disabled_pairs(self, caps, srdf, self_samples: int = 0) -> Dict[frozenset, str]:
        """The table's disabled link pairs plus MoveIt's adjacent / default rules and ``srdf``'s, the default
        rule measured on a dense cover of the capsules (spheres about 1 mm apart), so that coarse and dense
        models of one table leave out the same pairs."""
        c, r, own = capsule_spheres(caps, 0.02)
        idx = torch.tensor([self.links.index(caps[k].link) for k in own.tolist()], dtype=torch.long)
        probe = _Placement(self.robot, self.links, idx, c, r)
        out = dict(self.disabled)
        for a, b, why in disabled_link_pairs(probe, ready_configuration(self.robot), srdf=srdf,
                                             n_samples=int(self_samples)):
            out.setdefault(frozenset((a, b)), why)
        return out

    def _sphere_pairs(self) -> torch.Tensor:
        """``(P, 2)`` sphere pairs of the checked link pairs; sets ``link_pairs``: per checked link pair, the
        sphere indices of both links (for the bounded check of :meth:`self_clearance`)."""
        L = len(self.links)
        check = torch.ones(L, L, dtype=torch.bool).triu(1)
        for p in self.disabled:
            a, b = (tuple(p) * 2)[:2]
            if a != b and a in self.links and b in self.links:
                i, j = sorted((self.links.index(a), self.links.index(b)))
                check[i, j] = False
        li = self.link_index.cpu()
        members = [(li == k).nonzero().flatten().to(self.device) for k in range(L)]
        self.link_pairs = [(members[a], members[b]) for a, b in check.nonzero().tolist()]
        i, j = torch.triu_indices(len(li), len(li), 1)
        lo, hi = torch.minimum(li[i], li[j]), torch.maximum(li[i], li[j])
        ok = check[lo, hi]
        # a bounding sphere per link around one of its spheres (the anchor, nearest the centre of its spheres)
        self.anchor = torch.zeros(L, dtype=torch.long, device=self.device)
        self.bound = torch.zeros(L, dtype=self.dtype, device=self.device)
        for k, m in enumerate(members):
            c, r = self.local[m], self.radii[m]
            a = int((c - c.mean(0)).norm(dim=-1).argmin())
            self.anchor[k] = m[a]
            self.bound[k] = ((c - c[a]).norm(dim=-1) + r).max()
        return torch.stack([i[ok], j[ok]], -1).to(self.device)

    def __repr__(self) -> str:
        return (f"CollisionModel({self.robot.name!r}, {len(self.radii)} spheres on {len(self.links)} links, "
                f"{len(self.pairs)} self-collision pairs, spacing={self.spacing}, conservative={self.conservative})")

    def as_q(self, q) -> torch.Tensor:
        q = torch.as_tensor(q, dtype=self.dtype, device=self.device)
        if q.dim() == 0 or q.shape[-1] != self.robot.dof:
            raise ValueError(f"q must have shape (..., {self.robot.dof}) ({self.robot.name} joint values), got "
                             f"{tuple(q.shape)}")
        return q

    def sphere_centers(self, q) -> torch.Tensor:
        """World centres ``(..., S, 3)`` of the spheres for joint values ``q (..., dof)``."""
        return self._place.sphere_centers(self.as_q(q))

    def self_clearance(self, q=None, centers: Optional[torch.Tensor] = None,
                       exact_below: float = 0.05) -> torch.Tensor:
        """Smallest signed distance ``(...,)`` (m) between the spheres of a self-collision pair (``inf`` when
        the robot has none); negative is penetration. Give ``q (..., dof)`` or precomputed ``centers``.

        Link pairs whose bounding spheres are ``exact_below`` (m) apart or more are not compared sphere by
        sphere: the result is exact where it is below ``exact_below`` and otherwise a value between
        ``exact_below`` and the exact one (``exact_below=inf``: exact everywhere)."""
        c = self.sphere_centers(q) if centers is None else centers
        shape = c.shape[:-2]
        c = c.reshape(-1, *c.shape[-2:])
        out = c.new_full(c.shape[:1], math.inf)
        if not len(self.pairs):
            return out.reshape(shape)
        anchors = c[:, self.anchor]                                                  # (B, L, 3)
        for a, b in self.link_pairs:
            la, lb = int(self.link_index[a[0]]), int(self.link_index[b[0]])
            gap = (anchors[:, la] - anchors[:, lb]).norm(dim=-1) - self.bound[la] - self.bound[lb]
            near = (gap < exact_below).nonzero().flatten()
            out = torch.minimum(out, gap.masked_fill(gap < exact_below, math.inf))
            if len(near):
                d = torch.cdist(c[near][:, a], c[near][:, b]) - self.radii[a, None] - self.radii[None, b]
                out[near] = torch.minimum(out[near], d.flatten(-2).amin(-1))
        return out.reshape(shape)
