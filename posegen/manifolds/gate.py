"""The gate every data point passes at entry, loaders and the trainer alike: layout, finiteness, and each
factor's own check (``Manifold.data_check``).

``validate_points`` checks the layout against a :class:`~posegen.manifolds.Product`, refuses or drops
non-finite rows, renormalises sphere/SO3 rows that are slightly off the unit sphere (with a warning),
refuses those that are far off, and refuses (or wraps) torus angles outside ``[-pi, pi]``.

It lives with the geometry because it needs nothing else: the loaders of :mod:`posegen.data` and the training
loop both call it, so neither has to import the other.

Warnings come once per load: inside :func:`one_warning_per_load` (a loader that checks a file's splits one by
one), the same change to the same factor of the same file is reported once, with the counts of every check
summed.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from typing import Callable, Iterator, Optional, Sequence, Tuple

import numpy as np
import torch

from .base import tol
from .euclidean import Euclidean
from .parse import parse
from .product import Product

__all__ = ["validate_points", "validate_with_conditions", "as_float_tensor", "layout", "DataWarning",
           "check_nonfinite_mode", "NONFINITE", "one_warning_per_load"]

NONFINITE = ("raise", "drop")


class DataWarning(UserWarning):
    """Data were changed on entry (rows dropped, quaternions renormalised); the message gives counts."""


# ---------------------------------------------------------------------- small helpers
def _first_rows(bad: torch.Tensor, row_label: Optional[Callable[[int], str]] = None, limit: int = 5) -> str:
    """``"rows [3, 7, 9] and 12 more"`` for a boolean mask ``(N,)``; labels rows with ``row_label``."""
    idx = bad.nonzero().flatten()[: limit].tolist()
    n = int(bad.sum())
    shown = [row_label(i) if row_label else i for i in idx]
    more = f" and {n - len(idx)} more" if n > len(idx) else ""
    return f"rows {shown}{more}"


def _short_spec(factor) -> str:
    """The factor's token without its bracketed options or limits: ``"I7"`` for ``"I7[-2.9:2.9,...]"``."""
    return factor.spec.split("[", 1)[0]


def _factor_where(manifold: Product, i: int, labels: Optional[Sequence[str]]) -> str:
    """``"factor 0 (I7, columns 0:7 = robot0_joint_pos)"``: short, the limits are in the config and the file."""
    s = manifold.slices[i]
    label = f" = {labels[i]}" if labels is not None else ""
    return f"factor {i} ({_short_spec(manifold.factors[i])}, columns {s.start}:{s.stop}{label})"


def layout(manifold: Product, labels: Optional[Sequence[str]] = None) -> str:
    """Human-readable column layout, e.g. ``"R3 [0:3] + SO3 [3:7] (qx qy qz qw)"``."""
    manifold = parse(manifold)
    parts = []
    for i, (f, s) in enumerate(zip(manifold.factors, manifold.slices)):
        extra = f" {labels[i]}" if labels is not None else ""
        extra += " (qx qy qz qw)" if f.holds_quaternion else ""
        parts.append(f"{f.spec} [{s.start}:{s.stop}]{extra}")
    return " + ".join(parts)


def check_nonfinite_mode(nonfinite: str) -> None:
    if nonfinite not in NONFINITE:
        raise ValueError(f"Invalid nonfinite={nonfinite!r}. Must be one of {NONFINITE}")


def as_float_tensor(x, name: str = "points", dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """``x`` (tensor, array or nested list) as a floating-point tensor; integers become ``dtype`` or the
    default dtype, booleans and other types are refused."""
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError) as e:
            raise TypeError(f"{name} must be a tensor or array of numbers, got {type(x).__name__} ({e})") from None
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    if not x.is_floating_point():
        x = x.to(dtype or torch.get_default_dtype())
    elif dtype is not None:
        x = x.to(dtype)
    return x


# ---------------------------------------------------------------------- warnings, once per load
class _Note:
    """One warning to give: a factor's ``note`` whose ``{rows}`` (rows changed), ``{n}`` (rows checked) and
    ``{coords}`` (names of the coordinates changed) are filled from counts that add up over the checks of one
    load; a note without them is given as it is."""

    def __init__(self, template: str, names: Sequence[str] = ()):
        self.template, self.names = template, list(names)
        self.rows = self.n = 0
        self.coords: set = set()

    def add(self, cells: Optional[torch.Tensor], n: int) -> None:
        """Count the changed ``cells (N,) or (N, k)`` of a check of ``n`` rows."""
        self.n += n
        if cells is not None:
            cells = cells if cells.dim() == 2 else cells.unsqueeze(1)
            self.rows += int(cells.any(1).sum())
            self.coords.update(int(c) for c in cells.any(0).nonzero().flatten().tolist())

    def text(self) -> str:
        coords = ", ".join(self.names[c] if c < len(self.names) else str(c) for c in sorted(self.coords))
        text = self.template  # str.replace, not format: file names and labels may hold braces
        for key, value in (("{rows}", self.rows), ("{n}", self.n), ("{coords}", coords)):
            text = text.replace(key, str(value))
        return text


_held = threading.local()  # .notes: {key: _Note} while a one_warning_per_load block is open in this thread


@contextlib.contextmanager
def one_warning_per_load() -> Iterator[None]:
    """Hold the gate's :class:`DataWarning` s back until the end of the block, and give each once: the same
    change to the same factor under the same ``name`` (e.g. values moved off the joint limits of one file's
    train and valid splits) becomes one warning whose counts are the sums. Nothing is given when the block
    raises (a refused load leaves no warnings behind). Nested blocks belong to the outermost one."""
    if getattr(_held, "notes", None) is not None:
        yield
        return
    _held.notes = {}
    try:
        yield
        notes = list(_held.notes.values())
    finally:
        _held.notes = None
    for note in notes:
        warnings.warn(note.text(), DataWarning, stacklevel=3)


_PLACEHOLDERS = ("{rows}", "{n}", "{coords}")


def _give(key, template: str, cells: Optional[torch.Tensor] = None, n: int = 0, names: Sequence[str] = ()) -> None:
    """Warn now, or hold the note for the end of the open :func:`one_warning_per_load` block (merged with the
    notes of the same ``key`` when its counts are placeholders; a message with its counts written in stays
    apart, so that no count is lost)."""
    held = getattr(_held, "notes", None)
    if not any(p in template for p in _PLACEHOLDERS):
        key = object()
    note = held.setdefault(key, _Note(template, names)) if held is not None else _Note(template, names)
    note.add(cells, n)
    if held is None:
        warnings.warn(note.text(), DataWarning, stacklevel=3)


# ---------------------------------------------------------------------- the gate
def validate_points(manifold, x, *, name: str = "points", nonfinite: str = "raise",
                    renormalize_tol: float = 0.05, wrap: bool = False,
                    labels: Optional[Sequence[str]] = None,
                    row_label: Optional[Callable[[int], str]] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """Check data points ``x (N, coord_dim)`` against ``manifold`` and return ``(x_clean, keep_mask)``.

    ``manifold`` is a Product, a factor or a spec string (``"R3 x T7 x SO3"``); ``x`` a float tensor or
    array (integers are converted to the default dtype). ``keep_mask (N,)`` is True for the rows of ``x``
    that are in ``x_clean``. ``x_clean`` is ``x`` itself when nothing needed changing (values that pass are
    never rewritten, so data round-trip bit for bit).

    * Wrong shape or width -> :class:`ValueError` giving the expected layout.
    * Rows with NaN or inf: ``nonfinite="raise"`` refuses them (count and first rows);
      ``nonfinite="drop"`` drops them with a :class:`DataWarning` giving the count.
    Each factor checks its own columns (``Manifold.data_check``):

    * Sphere and SO3 factors: rows whose norm is off 1 by at most the dtype's ``unit`` tolerance
      (:data:`posegen.manifolds.TOLERANCES`) pass; off by at most ``renormalize_tol`` are normalised
      with a :class:`DataWarning` (count); farther off, or zero, -> :class:`ValueError` naming the factor,
      its columns and the rows.
    * Torus factors: angles must be radians in ``[-pi, pi]`` (within the unit tolerance). Otherwise
      :class:`ValueError` with a hint (degrees? unwrapped joint angles?), unless ``wrap=True``, which
      wraps every angle outside ``[-pi, pi)`` into it (angles inside are left untouched).
    * Interval factors (joint limits): values outside the limits -> :class:`ValueError`; values on a limit
      (within ``LIMIT_MARGIN`` of the range) are moved that far inside, with a :class:`DataWarning` naming the
      factor by its short spec (``I7``), its columns and the coordinates moved.
    * Euclidean factors: only finiteness is checked.

    Each warning names the factor as ``factor i (I7, columns 0:7 = label)``; inside
    :func:`one_warning_per_load` the warnings of several calls are merged (counts summed).

    ``labels`` (one string per factor, e.g. the file keys) and ``row_label`` (row index -> string, e.g.
    ``"demo_3[17]"``) only make the messages name things the way the caller's file does.
    """
    manifold = parse(manifold)
    check_nonfinite_mode(nonfinite)
    if labels is not None and len(labels) != len(manifold.factors):
        raise ValueError(f"labels has {len(labels)} entries but {manifold!r} has {len(manifold.factors)} factors")
    if not (isinstance(renormalize_tol, (int, float)) and renormalize_tol >= 0):
        raise ValueError(f"renormalize_tol must be a number >= 0, got {renormalize_tol!r}")
    x = as_float_tensor(x, name)
    if x.dim() != 2 or x.shape[1] != manifold.coord_dim:
        raise ValueError(f"{name} must have shape (N, {manifold.coord_dim}) for {manifold!r} with columns "
                         f"{layout(manifold, labels)}; got shape {tuple(x.shape)}")
    n = x.shape[0]
    keep = torch.ones(n, dtype=torch.bool, device=x.device)
    dropped = None

    # 1. non-finite rows
    bad = ~torch.isfinite(x).all(1)
    if bad.any():
        count = int(bad.sum())
        if nonfinite == "raise":
            raise ValueError(f"{name}: {count} of {n} rows contain NaN or inf ({_first_rows(bad, row_label)}); "
                             f"clean them, or pass nonfinite='drop' to drop them")
        dropped = f"{name}: dropped {count} of {n} rows containing NaN or inf ({_first_rows(bad, row_label)})"
        keep = ~bad
        x = x[keep]
        # messages below index the kept rows; map them back to the caller's rows
        orig, inner = keep.nonzero().flatten().tolist(), row_label or (lambda j: j)
        row_label = lambda i: inner(orig[i])  # noqa: E731

    # 2. factor by factor: refuse first, then change (so a refusal leaves no warnings behind)
    unit = tol(x.dtype, "unit")
    fixes = []  # (columns, rows (N,) or cells (N, k) to replace, replacement, warning or None, its merge key,
    #              the factor's coordinate names)
    for i, (f, s) in enumerate(zip(manifold.factors, manifold.slices)):
        found = f.data_check(x[:, s], unit=unit, renormalize_tol=renormalize_tol, wrap=wrap)
        if found.refuse is not None:
            raise ValueError(f"{name}: {_factor_where(manifold, i, labels)} {found.reason} "
                             f"({_first_rows(found.refuse, row_label)})")
        if found.fix is not None:
            where = _factor_where(manifold, i, labels)
            note = found.note and f"{name}: " + found.note.replace("{where}", where)
            fixes.append((s, found.fix, found.value, note, (name, where, found.note), f.coord_names()))
    if dropped:
        _give((name, dropped), dropped)
    out = x.clone() if fixes else x
    for s, cells, value, message, key, names in fixes:
        out[:, s] = torch.where(cells, value, x[:, s])
        if message:
            _give(key, message, cells, x.shape[0], names)
    manifold.check_point(out)  # a last net: any factor type added later still gets its own check
    return out, keep


def validate_with_conditions(manifold, x, conditions=None, *, labels: Optional[Sequence[str]] = None, **kwargs):
    """:func:`validate_points` over points ``x (N, coord_dim)`` and ``conditions (N, c)`` (or None) together,
    so that a row dropped for NaN/inf goes from both. Conditions are checked as an extra ``R^c`` factor
    (finite only) and cast to ``x``'s dtype. Returns ``(x_clean, conditions_clean or None, keep_mask)``."""
    manifold = parse(manifold)
    if conditions is None:
        x, keep = validate_points(manifold, x, labels=labels, **kwargs)
        return x, None, keep
    x = as_float_tensor(x, kwargs.get("name", "points"))
    if x.dim() != 2 or x.shape[1] != manifold.coord_dim:
        validate_points(manifold, x, labels=labels, **kwargs)  # raises, giving the points' own layout
    c = as_float_tensor(conditions, "conditions", dtype=x.dtype)
    if c.dim() == 1:
        c = c.unsqueeze(1)
    if c.dim() != 2 or c.shape[0] != x.shape[0]:
        raise ValueError(f"conditions must have shape ({x.shape[0]}, c) like the points, got {tuple(c.shape)}")
    full = Product(*manifold.factors, Euclidean(c.shape[1]))
    labels = None if labels is None else list(labels) + ["conditions"]
    both, keep = validate_points(full, torch.cat([x, c], 1), labels=labels, **kwargs)
    return both[:, :manifold.coord_dim], both[:, manifold.coord_dim:], keep

