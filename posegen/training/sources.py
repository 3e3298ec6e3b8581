"""Batch sources of the training loop: a fixed dataset, or a stream that draws fresh data every step.

A source hands the trainer ``(x, c, index)`` per step, in the flow's internal coordinates (after
:meth:`~posegen.PoseFlow.to_internal`), drawn from the step's generator so that a resumed run draws what the
uninterrupted run would have drawn:

* :class:`DatasetSource`: points ``(N, coord_dim)`` and optional conditions ``(N, c)``, checked by the gate
  (:func:`posegen.manifolds.gate.validate_points`) before any work; batches are uniform draws with
  replacement, SO3 rows augmented with their other sign.
* :class:`StreamSource`: a function ``draw(n, generator) -> (points, conditions)`` in user coordinates,
  called every step (fresh forward-kinematics samples for IK, object/grasp batches for grasp models); a
  seeded ``reference`` draw stands for the data where the loop needs a fixed set (standardisation, the
  objective's ``setup``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Tuple

import torch

from ..manifolds.gate import validate_points

__all__ = ["Batch", "BatchSource", "DatasetSource", "StreamSource", "as_source"]

Pair = Tuple[torch.Tensor, Optional[torch.Tensor]]


class Batch(NamedTuple):
    """One training batch: ``x (B, coord_dim)`` internal coordinates, ``c (B, cond_dim)`` or None, and
    ``index (B,)`` rows of the dataset (None for a stream; CNFM's mixture path uses it to leave a point's
    own kernel out)."""

    x: torch.Tensor
    c: Optional[torch.Tensor]
    index: Optional[torch.Tensor]


class BatchSource:
    """What the training loop draws from. Subclasses implement :meth:`reference`, :meth:`bind` and
    :meth:`batch`; see the module docstring."""

    def reference(self) -> Pair:
        """``(points, conditions)`` in user coordinates that stand for the data: standardisation is fitted
        to them and the objective is set up on them."""
        raise NotImplementedError

    def bind(self, flow, device: torch.device) -> None:
        """Called once the flow's standardisation is fixed, on the training device, before the first batch."""
        raise NotImplementedError

    def batch(self, n: int, generator: torch.Generator, augment: bool) -> Batch:
        """``n`` rows drawn with ``generator`` (on the training device); ``augment`` adds the manifold's
        symmetries (q or -q for SO3)."""
        raise NotImplementedError

    def internal(self) -> Pair:
        """The reference in internal coordinates on the training device (after :meth:`bind`): what the
        objective is set up on (CNFM's mixture path, Moser Flow's prior)."""
        x, c = self.reference()
        flow, device = self._flow, self._device
        return flow.to_internal(x.to(device, flow.dtype)), None if c is None else c.to(device, flow.dtype)


def _gate(flow, data, name: str) -> Pair:
    """Points and conditions of ``data`` (a tensor/array, a ``(points, conditions)`` pair, or a dataset with
    ``.points`` and ``.conditions``), checked against the flow before any work starts."""
    if hasattr(data, "points"):
        points, conditions = data.points, getattr(data, "conditions", None)
    elif isinstance(data, (tuple, list)) and len(data) == 2 and hasattr(data[0], "shape"):
        points, conditions = data
    else:
        points, conditions = data, None
    points, keep = validate_points(flow.manifold, points, name=name)
    if points.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not flow.cond_dim:
        if conditions is not None:
            raise ValueError(f"{name} has conditions but the flow is unconditional (cond_dim=0); build it with "
                             f"PoseFlow(..., cond_dim={torch.as_tensor(conditions).shape[-1]})")
        return points, None
    if conditions is None:
        raise ValueError(f"the flow is conditional (cond_dim={flow.cond_dim}) but {name} has no conditions")
    conditions = torch.as_tensor(conditions)
    if flow.encoder is not None:  # raw conditions (point clouds, ...): the encoder checks their shape
        flow.encoder.check(conditions[:1].to(flow.dtype))
    elif conditions.dim() != 2 or conditions.shape[1] != flow.cond_dim:
        raise ValueError(f"{name} conditions must have shape (N, {flow.cond_dim}), got {tuple(conditions.shape)}")
    conditions = conditions[keep.to(conditions.device)] if keep is not None else conditions
    if conditions.shape[0] != points.shape[0]:
        raise ValueError(f"{name}: {points.shape[0]} points but {conditions.shape[0]} condition rows")
    if not torch.isfinite(conditions).all():
        raise ValueError(f"{name} conditions contain NaN or inf")
    return points, conditions


class DatasetSource(BatchSource):
    """A fixed set of points (and conditions), checked at construction; batches are uniform index draws."""

    def __init__(self, flow, data, name: str = "training data"):
        self.points, self.conditions = _gate(flow, data, name)
        self._z = self._c = None

    def __len__(self) -> int:
        return self.points.shape[0]

    def reference(self) -> Pair:
        return self.points, self.conditions

    def bind(self, flow, device) -> None:
        self._flow, self._device = flow, device
        self._z = flow.to_internal(self.points.to(device, flow.dtype))
        self._c = None if self.conditions is None else self.conditions.to(device, flow.dtype)

    def internal(self) -> Pair:
        return self._z, self._c

    def batch(self, n, generator, augment) -> Batch:
        idx = torch.randint(self._z.shape[0], (n,), generator=generator, device=generator.device).to(self._z.device)
        x = self._z[idx]
        if augment:
            x = self._flow.manifold.augment(x, generator)
        return Batch(x, None if self._c is None else self._c[idx], idx)


class StreamSource(BatchSource):
    """Fresh data every step from ``draw(n, generator) -> (points (n, coord_dim), conditions (n, c) or None)``
    in user coordinates; ``reference_size`` rows from a generator seeded with ``seed`` stand for the data."""

    def __init__(self, draw: Callable[[int, torch.Generator], Pair], *, reference_size: int = 65536, seed: int = 0):
        if int(reference_size) != reference_size or reference_size < 1:
            raise ValueError(f"reference_size must be a positive integer, got {reference_size!r}")
        self.draw = draw
        self.reference_size = int(reference_size)
        self.seed = int(seed)
        self._ref: Optional[Pair] = None

    def reference(self) -> Pair:
        if self._ref is None:
            self._ref = self.draw(self.reference_size, torch.Generator().manual_seed(self.seed))
        return self._ref

    def bind(self, flow, device) -> None:
        self._flow, self._device = flow, device

    def batch(self, n, generator, augment) -> Batch:
        x, c = self.draw(n, generator)
        flow = self._flow
        x = flow.to_internal(x.to(self._device, flow.dtype))
        if augment:
            x = flow.manifold.augment(x, generator)
        return Batch(x, None if c is None else c.to(self._device, flow.dtype), None)


def as_source(flow, data, name: str = "training data") -> Optional[BatchSource]:
    """``data`` as a :class:`BatchSource`: a source is returned as it is, None stays None, anything else
    becomes a checked :class:`DatasetSource`."""
    if data is None or isinstance(data, BatchSource):
        return data
    return DatasetSource(flow, data, name)
