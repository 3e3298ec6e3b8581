"""posegen's version, from the installed package's metadata (a source tree that was not installed says so)."""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("posegen")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
