"""Data: datasets of points on product manifolds, validation, and loaders (robomimic HDF5, LeRobot folders,
posegen's own HDF5 layout, CSV/TSV/NPY tables, the earth-science sets on S^2).

Every loader returns a :class:`PoseDataset` whose points passed :func:`validate_points`: quaternions xyzw
and unit, angles in radians in ``[-pi, pi)``, no NaN/inf.
"""

from .dataset import PoseDataset, split_sizes
from .earth import EARTH_DATASETS, data_root, earth_path, earth_splits, load_earth
from .h5io import load_extras, load_points, save_points
from .lerobot import load_lerobot
from .robomimic import load_robomimic
from .tabular import latlon_to_sphere, load_latlon, load_table, read_table, sphere_to_latlon
from .validate import DataWarning, convert_quats, validate_points, validate_with_conditions

__all__ = [
    "PoseDataset", "split_sizes",
    "validate_points", "validate_with_conditions", "convert_quats", "DataWarning",
    "load_robomimic", "load_lerobot",
    "save_points", "load_points", "load_extras",
    "load_latlon", "load_table", "read_table", "latlon_to_sphere", "sphere_to_latlon",
    "EARTH_DATASETS", "load_earth", "earth_splits", "earth_path", "data_root",
]
