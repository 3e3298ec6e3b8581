"""``PoseDataset``: points on a product manifold, with optional conditions, demo groups and provenance."""

from __future__ import annotations

import copy
import math
from typing import Dict, List, Optional, Sequence

import torch

from ..manifolds import Product, parse
from .validate import as_float_tensor


def split_sizes(n: int, fractions: Sequence[float], name: str = "fractions") -> List[int]:
    """Sizes of a split of ``n`` items by ``fractions`` (summing to 1), or pass-through integer sizes
    (summing to ``n``).

    Every part after the first gets ``floor(f * n)`` and the first gets the rest: for (0.8, 0.1, 0.1)
    that is ``N_val = N_test = n // 10``, the rule of Riemannian Flow Matching's ``get_loaders``.
    """
    fr = list(fractions)
    if not fr:
        raise ValueError(f"{name} must not be empty")
    if all(isinstance(f, int) and not isinstance(f, bool) for f in fr):
        if any(f < 0 for f in fr) or sum(fr) != n:
            raise ValueError(f"integer {name} {fr} must be >= 0 and sum to {n}")
        return fr
    if any(not isinstance(f, (int, float)) or f < 0 for f in fr) or abs(sum(fr) - 1) > 1e-6:
        raise ValueError(f"{name} must be non-negative and sum to 1 (or be integer sizes summing to {n}), "
                         f"got {fr}")
    rest = [int(math.floor(f * n + 1e-9)) for f in fr[1:]]
    return [n - sum(rest)] + rest


class PoseDataset(torch.utils.data.Dataset):
    """Points on a product manifold, one per row.

    Attributes
    ----------
    points : ``(N, coord_dim)`` float tensor, in the manifold's layout (quaternions xyzw, angles radians in
        ``[-pi, pi)``).
    manifold : :class:`~posegen.manifolds.Product`.
    conditions : ``(N, c)`` float tensor or None (e.g. a goal, an object pose).
    groups : ``(N,)`` int64 tensor or None: the group (demonstration) of each point, an index into
        ``group_names``.
    group_names : list of str (e.g. demo names in numeric order); ``[]`` without groups.
    columns : list of coordinate names (``coord_dim`` of them).
    condition_columns : list of condition names (``c`` of them) or ``[]``.
    meta : dict, provenance (source file, keys, split, ...).

    ``ds[i]`` is ``{"x": points[i]}`` plus ``"c": conditions[i]`` when there are conditions and
    ``"group": groups[i]`` when there are groups; ``i`` may be an int, a slice or an index tensor (a batch).
    Constructing one checks shapes and that the points lie on the manifold.
    """

    def __init__(self, points, manifold, *, conditions=None, groups=None, group_names=None, columns=None,
                 condition_columns=None, meta: Optional[dict] = None, check: bool = True):
        self.manifold: Product = parse(manifold)
        self.points = as_float_tensor(points, "points")
        if self.points.dim() != 2 or self.points.shape[1] != self.manifold.coord_dim:
            raise ValueError(f"points must have shape (N, {self.manifold.coord_dim}) for {self.manifold!r}, "
                             f"got {tuple(self.points.shape)}")
        n = self.points.shape[0]
        self.conditions = None
        if conditions is not None:
            c = as_float_tensor(conditions, "conditions")
            if c.dim() == 1:
                c = c.unsqueeze(1)
            if c.dim() != 2 or c.shape[0] != n:
                raise ValueError(f"conditions must have shape ({n}, c) to match points, got {tuple(c.shape)}")
            self.conditions = c
        self.groups = None
        self.group_names = list(group_names) if group_names is not None else []
        if groups is not None:
            g = torch.as_tensor(groups)
            if g.dtype.is_floating_point or g.dtype == torch.bool or g.shape != (n,):
                raise ValueError(f"groups must be an integer tensor of shape ({n},), got "
                                 f"{g.dtype} {tuple(g.shape)}")
            g = g.to(torch.int64)
            if n and (int(g.min()) < 0 or (self.group_names and int(g.max()) >= len(self.group_names))):
                raise ValueError(f"groups must index group_names (0..{len(self.group_names) - 1}), got values "
                                 f"{int(g.min())}..{int(g.max())}")
            if not self.group_names and n:
                self.group_names = [str(i) for i in range(int(g.max()) + 1)]
            self.groups = g
        self.columns = list(columns) if columns is not None else self.manifold.coord_names()
        if len(self.columns) != self.manifold.coord_dim:
            raise ValueError(f"columns has {len(self.columns)} names, expected {self.manifold.coord_dim}")
        width = 0 if self.conditions is None else self.conditions.shape[1]
        self.condition_columns = (list(condition_columns) if condition_columns is not None
                                  else [f"c{i}" for i in range(width)])
        if len(self.condition_columns) != width:
            raise ValueError(f"condition_columns has {len(self.condition_columns)} names, expected {width}")
        self.meta = dict(meta) if meta else {}
        if check:
            self.manifold.check_point(self.points)

    # ------------------------------------------------------------------ Dataset protocol
    def __len__(self) -> int:
        return self.points.shape[0]

    def __getitem__(self, i) -> Dict[str, torch.Tensor]:
        item = {"x": self.points[i]}
        if self.conditions is not None:
            item["c"] = self.conditions[i]
        if self.groups is not None:
            item["group"] = self.groups[i]
        return item

    def __repr__(self) -> str:
        extra = f", conditions={self.conditions.shape[1]}" if self.conditions is not None else ""
        extra += f", groups={len(self.group_names)}" if self.groups is not None else ""
        return (f"PoseDataset(n={len(self)}, manifold={self.manifold!r}, dtype={self.points.dtype}{extra}, "
                f"source={self.meta.get('source', '?')!r})")

    # ------------------------------------------------------------------ derived datasets
    def subset(self, index, note: Optional[dict] = None) -> "PoseDataset":
        """The rows ``index`` (int64 index tensor, boolean mask or slice) as a new dataset; ``note`` is
        merged into a copy of ``meta``. Group indices and ``group_names`` are kept as they are."""
        if isinstance(index, torch.Tensor):
            index = index.to(self.points.device)
        meta = copy.deepcopy(self.meta)
        meta.update(note or {})
        return PoseDataset(self.points[index], self.manifold,
                           conditions=None if self.conditions is None else self.conditions[index],
                           groups=None if self.groups is None else self.groups[index],
                           group_names=self.group_names, columns=self.columns,
                           condition_columns=self.condition_columns, meta=meta, check=False)

    def random_split(self, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> tuple:
        """Random disjoint split covering every row, e.g. train/val/test.

        The permutation is ``torch.randperm(N, generator=torch.Generator().manual_seed(seed))`` cut into
        consecutive parts of :func:`split_sizes` -- index for index what
        ``torch.utils.data.random_split(ds, sizes, generator=torch.Generator().manual_seed(seed))`` gives.
        Rows inside each part keep the permutation's order.
        """
        n = len(self)
        sizes = split_sizes(n, fractions)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        parts, start = [], 0
        for k, size in enumerate(sizes):
            idx = perm[start:start + size]
            parts.append(self.subset(idx, {"split": {"kind": "random", "seed": int(seed), "sizes": sizes,
                                                     "part": k}}))
            start += size
        return tuple(parts)

    def split_by_group(self, fractions_or_names, seed: int = 0):
        """Split by whole groups (demonstrations), so no demo leaks across parts.

        ``fractions_or_names``: fractions of the *groups* (e.g. ``(0.8, 0.2)``; the groups are permuted with
        ``torch.randperm(G, generator=torch.Generator().manual_seed(seed))`` and cut by
        :func:`split_sizes`), or a sequence of lists of group names (``(["demo_1", "demo_2"], ["demo_3"])``)
        or a dict of them (``{"train": [...], "valid": [...]}``; a dict is returned). Names must exist and
        not repeat across parts; parts given by name need not cover every group.
        """
        if self.groups is None:
            raise ValueError("split_by_group needs groups (demo indices); this dataset has none "
                             f"(source {self.meta.get('source', '?')!r}); use random_split instead")
        spec = fractions_or_names
        as_dict = isinstance(spec, dict)
        items = list(spec.values()) if as_dict else list(spec)
        if items and all(isinstance(v, (list, tuple, set, frozenset)) for v in items):
            lookup = {name: k for k, name in enumerate(self.group_names)}
            seen: Dict[str, int] = {}
            group_sets = []
            for p, names in enumerate(items):
                names = [names] if isinstance(names, str) else list(names)
                unknown = [nm for nm in names if nm not in lookup]
                if unknown:
                    raise ValueError(f"unknown group names {unknown[:5]}; available: {_preview(self.group_names)}")
                for nm in names:
                    if nm in seen:
                        raise ValueError(f"group {nm!r} is in parts {seen[nm]} and {p}; parts must be disjoint")
                    seen[nm] = p
                group_sets.append([lookup[nm] for nm in names])
            kind = {"kind": "group-names"}
        else:
            present = torch.unique(self.groups).tolist()
            sizes = split_sizes(len(present), items)
            perm = torch.randperm(len(present), generator=torch.Generator().manual_seed(int(seed))).tolist()
            group_sets, start = [], 0
            for size in sizes:
                group_sets.append(sorted(present[j] for j in perm[start:start + size]))
                start += size
            kind = {"kind": "group-random", "seed": int(seed), "group_sizes": sizes}
        parts = []
        for k, gs in enumerate(group_sets):
            mask = torch.isin(self.groups, torch.tensor(gs, dtype=torch.int64, device=self.groups.device))
            note = {"split": dict(kind, part=k, groups=[self.group_names[g] for g in gs])}
            parts.append(self.subset(mask, note))
        if as_dict:
            return dict(zip(spec.keys(), parts))
        return tuple(parts)

    def subsample(self, stride: Optional[int] = None, *, n: Optional[int] = None, seed: int = 0) -> "PoseDataset":
        """Every ``stride``-th row (in order), or ``n`` rows drawn without replacement (seeded, kept in their
        original order). Give exactly one of ``stride`` and ``n``."""
        if (stride is None) == (n is None):
            raise ValueError("subsample needs exactly one of stride= or n=")
        if stride is not None:
            if int(stride) != stride or stride < 1:
                raise ValueError(f"stride must be an integer >= 1, got {stride!r}")
            return self.subset(slice(None, None, int(stride)), {"subsample": {"stride": int(stride)}})
        if int(n) != n or not 0 <= n <= len(self):
            raise ValueError(f"n must be an integer in [0, {len(self)}], got {n!r}")
        idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(int(seed)))[: int(n)].sort().values
        return self.subset(idx, {"subsample": {"n": int(n), "seed": int(seed)}})

    def to(self, device=None, dtype: Optional[torch.dtype] = None) -> "PoseDataset":
        """A copy on ``device`` with points and conditions in ``dtype`` (groups stay int64)."""
        if dtype is not None and not dtype.is_floating_point:
            raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
        out = copy.copy(self)
        out.points = self.points.to(device=device, dtype=dtype)
        if self.conditions is not None:
            out.conditions = self.conditions.to(device=device, dtype=dtype)
        if self.groups is not None:
            out.groups = self.groups.to(device=device)
        out.meta = copy.deepcopy(self.meta)
        return out


def _preview(names: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(map(str, names[:limit]))
    return f"[{shown}{', ...' if len(names) > limit else ''}] ({len(names)} in all)"

