"""Simple tables (CSV, TSV, whitespace text, NPY) into a :class:`PoseDataset`.

Text files may start with ``#`` comment lines and one header line (detected: a field that is text above a
number in the next line, or a line of text only); blank lines are skipped, empty cells are missing values
(NaN). The delimiter is taken from the suffix (``.csv`` comma, ``.tsv`` and ``.tab`` tab) or sniffed from the
first data line (comma, tab, semicolon, else whitespace).

Columns may hold text (identifiers, letters: a PDB id and a base beside seven torsion angles): only the
columns a loader uses must hold numbers, and one that does not is refused, naming the column and a value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..manifolds import parse
from ..rotations import check_quat_order
from .dataset import PoseDataset
from .validate import check_nonfinite_mode, convert_quats, validate_points, validate_with_conditions

Column = Union[int, str]
ANGLE_UNITS = ("rad", "deg")
LAT_NAMES = ("lat", "latitude")
LON_NAMES = ("lon", "long", "longitude", "lng")


# ---------------------------------------------------------------------- lat/lon <-> S^2
def latlon_to_sphere(lat, lon, degrees: bool = True, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Latitude/longitude ``(...)`` -> unit vectors ``(..., 3)`` with x = cos(lat) cos(lon),
    y = cos(lat) sin(lon), z = sin(lat). Computed in float64, returned in ``dtype`` (default: the
    inputs' floating dtype, else the default dtype)."""
    lat_t, lon_t = torch.as_tensor(lat), torch.as_tensor(lon)
    if dtype is None:
        dtype = lat_t.dtype if lat_t.is_floating_point() else torch.get_default_dtype()
    lat_t, lon_t = lat_t.to(torch.float64), lon_t.to(torch.float64)
    if degrees:
        lat_t, lon_t = torch.deg2rad(lat_t), torch.deg2rad(lon_t)
    c = torch.cos(lat_t)
    return torch.stack([c * torch.cos(lon_t), c * torch.sin(lon_t), torch.sin(lat_t)], -1).to(dtype)


def sphere_to_latlon(x, degrees: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Unit vectors ``(..., 3)`` -> ``(lat, lon)``, each ``(...)``: lat in [-90, 90], lon in (-180, 180]
    (radians with ``degrees=False``). Uses atan2 throughout, accurate at the poles."""
    x = torch.as_tensor(x)
    if x.shape[-1:] != (3,):
        raise ValueError(f"sphere_to_latlon: expected x of shape (..., 3), got {tuple(x.shape)}")
    lat = torch.atan2(x[..., 2], torch.hypot(x[..., 0], x[..., 1]))
    lon = torch.atan2(x[..., 1], x[..., 0])
    return (torch.rad2deg(lat), torch.rad2deg(lon)) if degrees else (lat, lon)


# ---------------------------------------------------------------------- reading
def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _is_value(s: str) -> bool:
    """A number, or an empty cell (a missing value, read as NaN)."""
    return s == "" or _is_number(s)


def _split(line: str, delimiter: Optional[str]) -> List[str]:
    return [p.strip().strip('"').strip("'") for p in (line.split(delimiter) if delimiter else line.split())]


def _has_header(first: List[str], second: Optional[List[str]]) -> bool:
    """Whether the first line names the columns: it has a field that is not a number where the next line
    has one (identifier and letter columns are text in every line), or, without such a column, every field
    of it is text."""
    if second is not None and any(not _is_value(a) and _is_value(b) for a, b in zip(first, second)):
        return True
    return not any(_is_value(a) for a in first)


def read_cells(path, delimiter: Optional[str] = None) -> Tuple[Optional[List[str]], np.ndarray]:
    """``(header or None, cells (n, k))`` of a table: float64 numbers when every cell is a number (or empty:
    NaN), as in ``.npy`` files (1-D arrays become one column); else the text of every cell (str array,
    stripped, quotes removed). Columns may hold text (identifiers, letters); :func:`table_numbers` converts
    the ones used."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"table file {str(path)!r} does not exist")
    if path.suffix.lower() == ".npy":
        try:
            a = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise ValueError(f"{str(path)!r} is not a readable .npy array of numbers: {e}") from None
        if a.dtype.kind not in "iuf" or a.ndim not in (1, 2):
            raise ValueError(f"{str(path)!r}: expected a 1-D or 2-D array of numbers, got {a.dtype} {a.shape}")
        return None, (a[:, None] if a.ndim == 1 else a).astype(np.float64, copy=False)
    if delimiter is None:
        delimiter = {".csv": ",", ".tsv": "\t", ".tab": "\t"}.get(path.suffix.lower())
    with open(path, encoding="utf-8-sig") as fh:
        lines = [ln.rstrip("\r\n") for ln in fh]
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise ValueError(f"{str(path)!r} has no data rows (only comments or blank lines)")
    if delimiter is None:
        delimiter = next((d for d in (",", "\t", ";") if d in lines[0]), None)
    first = [_split(ln, delimiter) for ln in lines[:2]]
    header = None
    if _has_header(first[0], first[1] if len(first) > 1 else None):
        header, lines = first[0], lines[1:]
    if not lines:
        raise ValueError(f"{str(path)!r} has a header but no data rows")
    width = len(header) if header is not None else len(first[0])
    try:  # a table of numbers only (the common case): numpy's reader, many times faster than cells
        values = np.loadtxt(lines, delimiter=delimiter, ndmin=2, dtype=np.float64,
                            converters=None if delimiter is None else (lambda v: float(v.strip() or "nan")))
        if values.shape[1] == width:
            return header, values
    except ValueError:
        pass
    rows = [_split(ln, delimiter) for ln in lines]
    bad = next((r for r, row in enumerate(rows) if len(row) != width), None)
    if bad is not None:
        what = f"header has {width} names {header}" if header is not None else f"first row has {width} fields"
        raise ValueError(f"{str(path)!r}: data row {bad} has {len(rows[bad])} fields but the {what} (rows counted "
                         f"after comments{' and the header' if header else ''})")
    return header, np.array(rows, dtype=str).reshape(len(rows), width)


def _column_name(header: Optional[List[str]], k: int) -> str:
    return repr(header[k]) if header else str(k)


def table_numbers(cells: np.ndarray, idx: Sequence[int], header: Optional[List[str]], path, hint: str) -> np.ndarray:
    """The columns ``idx`` of ``cells`` (from :func:`read_cells`) as float64 ``(n, len(idx))``; empty cells
    are NaN. A column holding text is refused with one :class:`ValueError` naming it, a value and its row,
    followed by ``hint`` (how to choose other columns)."""
    idx = list(idx)
    if cells.dtype.kind in "iuf":
        return cells[:, idx].astype(np.float64, copy=False)
    out = np.empty((cells.shape[0], len(idx)), dtype=np.float64)
    for j, k in enumerate(idx):
        col = np.where(cells[:, k] == "", "nan", cells[:, k])
        try:
            out[:, j] = col.astype(np.float64)
        except ValueError:
            r = next(r for r, v in enumerate(col) if not _is_number(v))
            raise ValueError(f"{str(path)!r}: column {_column_name(header, k)} holds text ({str(col[r])!r} in data row "
                             f"{r}), not numbers; {hint}") from None
    return out


def read_table(path, delimiter: Optional[str] = None) -> Tuple[Optional[List[str]], np.ndarray]:
    """``(header or None, values (n, k) float64)`` from a CSV/TSV/text file or ``(header None, array)``
    from an ``.npy`` file (1-D arrays become one column). Every column must hold numbers (empty cells are
    NaN); :func:`read_cells` reads tables with text columns."""
    header, cells = read_cells(path, delimiter)
    return header, table_numbers(cells, range(cells.shape[1]), header, path, "give a table of numbers only")


def _column_index(col: Column, header: Optional[List[str]], width: int, path) -> int:
    if isinstance(col, (int, np.integer)) and not isinstance(col, bool):
        if not -width <= col < width:
            raise ValueError(f"{str(path)!r}: column {col} out of range; the table has {width} columns")
        return int(col) % width
    if isinstance(col, str):
        if header is None:
            raise ValueError(f"{str(path)!r} has no header, so column {col!r} cannot be found; use integer "
                             f"column indices (0..{width - 1})")
        low = [h.lower() for h in header]
        if col.lower() in low:
            return low.index(col.lower())
        raise ValueError(f"{str(path)!r}: no column {col!r}; columns: {header}")
    raise TypeError(f"columns are given by integer index or name, got {col!r}")


# ---------------------------------------------------------------------- loaders
def load_latlon(path, degrees: bool = True, lat_col: Optional[Column] = None, lon_col: Optional[Column] = None,
                *, delimiter: Optional[str] = None, nonfinite: str = "raise",
                dtype: torch.dtype = torch.float32) -> PoseDataset:
    """Latitude/longitude rows of a table as points on S2 (see :func:`latlon_to_sphere`).

    ``lat_col`` / ``lon_col``: index or header name; by default the header's ``lat``/``latitude`` and
    ``lon``/``long``/``longitude`` columns (any case), or columns 0 and 1 without a header.
    Latitudes must lie in [-90, 90] degrees (or [-pi/2, pi/2] with ``degrees=False``) and longitudes in
    [-360, 360] (or [-2 pi, 2 pi]); anything else is refused with a hint about the unit.
    """
    check_nonfinite_mode(nonfinite)
    header, cells = read_cells(path, delimiter)
    width = cells.shape[1]
    if lat_col is None or lon_col is None:
        if header is not None:
            low = [h.lower() for h in header]
            find = lambda names: next((low.index(n) for n in names if n in low), None)  # noqa: E731
            lat_col = find(LAT_NAMES) if lat_col is None else lat_col
            lon_col = find(LON_NAMES) if lon_col is None else lon_col
            if lat_col is None or lon_col is None:
                raise ValueError(f"{str(path)!r}: cannot tell the latitude and longitude columns from the header "
                                 f"{header}; pass lat_col= and lon_col=")
        else:
            lat_col = 0 if lat_col is None else lat_col
            lon_col = 1 if lon_col is None else lon_col
    i, j = _column_index(lat_col, header, width, path), _column_index(lon_col, header, width, path)
    values = table_numbers(cells, [i, j], header, path, "choose the columns with lat_col= and lon_col=")
    lat, lon = values[:, 0], values[:, 1]
    unit, lat_max, lon_max = ("degrees", 90.0, 360.0) if degrees else ("radians", math.pi / 2, 2 * math.pi)
    with np.errstate(invalid="ignore"):
        bad_lat, bad_lon = np.abs(lat) > lat_max * (1 + 1e-9), np.abs(lon) > lon_max * (1 + 1e-9)
    if bad_lat.any() or bad_lon.any():
        which = "latitudes" if bad_lat.any() else "longitudes"
        rows = np.nonzero(bad_lat | bad_lon)[0][:5].tolist()
        hint = "pass degrees=True" if not degrees else "are the latitude and longitude columns right?"
        raise ValueError(f"{str(path)!r}: {which} outside the range for {unit} (|lat| <= {lat_max:g}, "
                         f"|lon| <= {lon_max:g}) in data rows {rows}; {hint}")
    x = latlon_to_sphere(lat, lon, degrees=degrees, dtype=dtype)
    x, keep = validate_points("S2", x, name=Path(path).name, nonfinite=nonfinite)
    meta = {"format": "latlon", "source": str(Path(path).resolve()), "degrees": degrees,
            "lat_col": header[i] if header else i, "lon_col": header[j] if header else j,
            "rows": int(values.shape[0]), "dropped_rows": int((~keep).sum())}
    return PoseDataset(x, "S2", meta=meta)


def load_table(path, manifold, columns: Optional[Sequence[Column]] = None, *, angle_unit: Optional[str] = None,
               delimiter: Optional[str] = None, quat_order: str = "xyzw",
               condition_columns: Optional[Sequence[Column]] = None, nonfinite: str = "raise", wrap: bool = False,
               renormalize_tol: float = 0.05, dtype: torch.dtype = torch.float32) -> PoseDataset:
    """Rows of a CSV/TSV/text/NPY table as points on ``manifold`` (a Product or spec string).

    ``columns``: the table columns (indices or header names) that make up the point, in the manifold's
    order; by default every column that is not a condition column. Other columns may hold text (ids,
    letters); a chosen column that holds text is refused, naming it and a value. ``angle_unit`` (``"rad"`` or ``"deg"``)
    must be given when the manifold has torus factors (angles are converted to radians; angles outside
    ``[-pi, pi]`` are refused unless ``wrap=True``). ``quat_order`` is how the table stores the SO3
    factors (converted to xyzw). ``condition_columns`` become ``conditions``. ``nonfinite``,
    ``renormalize_tol`` and ``wrap`` are as in :func:`~posegen.data.validate.validate_points`.
    """
    manifold = parse(manifold)
    quat_order = check_quat_order(quat_order)
    check_nonfinite_mode(nonfinite)
    tori = [s for f, s in zip(manifold.factors, manifold.slices) if f.periodic]
    if tori and angle_unit is None:
        raise ValueError(f"{manifold!r} has torus factors, so angle_unit must be given explicitly: 'rad' or 'deg'")
    if angle_unit is not None and angle_unit not in ANGLE_UNITS:
        raise ValueError(f"Invalid angle_unit={angle_unit!r}. Must be one of {ANGLE_UNITS}")
    header, cells = read_cells(path, delimiter)
    width = cells.shape[1]
    cond_idx = [_column_index(c, header, width, path) for c in (condition_columns or [])]
    if columns is None:
        idx = [k for k in range(width) if k not in cond_idx]
    else:
        idx = [_column_index(c, header, width, path) for c in columns]
    if len(idx) != manifold.coord_dim:
        names = [header[k] for k in idx] if header else idx
        raise ValueError(f"{str(path)!r}: {len(idx)} point columns {names} but {manifold!r} needs "
                         f"{manifold.coord_dim}; pass columns= to choose them")
    x = torch.from_numpy(table_numbers(cells, idx, header, path, "choose the point columns with columns= "
                                       "(data.columns in a config)"))
    if angle_unit == "deg":
        for s in tori:
            x[:, s] = torch.deg2rad(x[:, s])
    x = convert_quats(manifold, x, quat_order).to(dtype)
    # the column names follow the quaternions into xyzw order
    order = convert_quats(manifold, torch.arange(len(idx), dtype=torch.float64), quat_order).long().tolist()
    idx = [idx[k] for k in order]
    c = torch.from_numpy(table_numbers(cells, cond_idx, header, path, "choose them with condition_columns=")
                         ).to(dtype) if cond_idx else None
    x, c, keep = validate_with_conditions(manifold, x, c, name=Path(path).name, nonfinite=nonfinite,
                                          renormalize_tol=renormalize_tol, wrap=wrap)
    meta = {"format": "table", "source": str(Path(path).resolve()), "angle_unit": angle_unit,
            "quat_order": quat_order, "columns": [header[k] if header else k for k in idx],
            "rows": int(cells.shape[0]), "dropped_rows": int((~keep).sum())}
    return PoseDataset(x, manifold, conditions=c,
                       columns=[header[k] for k in idx] if header else None,
                       condition_columns=[header[k] for k in cond_idx] if (header and cond_idx) else None, meta=meta)
