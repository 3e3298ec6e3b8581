"""Data: datasets of points on product manifolds, validation, and loaders (robomimic HDF5, posegen's own
HDF5 layout, CSV/TSV/NPY tables, the earth-science sets on S^2).
"""
