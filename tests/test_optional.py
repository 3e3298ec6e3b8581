"""Optional dependencies (posegen.optional.require): every lazy import site names what needed the package and
the extra that installs it, in one shape, whether or not the package is installed here."""

import importlib
import sys

import pytest

from posegen.optional import install_hint, require

#: (module of the site, its function, its arguments, the module it imports, the extra named)
SITES = [
    ("posegen.grasps.objects", "_trimesh", (), "trimesh", "grasps"),
    ("posegen.robots.collisiongeometry", "_trimesh", (), "trimesh", "robots"),
    ("posegen.grasps.physics", "_mujoco", (), "mujoco", "grasps"),
    ("posegen.robots.mjcf", "_mujoco", ("arm.xml",), "mujoco", "robots"),
    ("posegen.robots._backend", "pytorch_kinematics", (), "pytorch_kinematics", "robots"),
    ("posegen.data.lerobot", "_pyarrow", (), "pyarrow.parquet", "lerobot"),
    ("posegen.plots", "_figure", ((2, 2),), "matplotlib.figure", "plot"),
]


@pytest.mark.parametrize("site, func, args, module, extra", SITES, ids=[f"{s[0]}.{s[1]}" for s in SITES])
def test_a_missing_package_names_its_extra(monkeypatch, site, func, args, module, extra):
    fn = getattr(importlib.import_module(site), func)
    monkeypatch.setitem(sys.modules, module, None)   # makes `import module` raise ImportError
    with pytest.raises(ImportError) as e:
        fn(*args)
    message = str(e.value)
    assert f'needs {module.split(".")[0]}: pip install "posegen[{extra}]"' in message
    assert e.value.__cause__ is not None                  # the original error is kept


def test_require_returns_the_module_and_its_message_shape(monkeypatch):
    assert require("math", extra="x", purpose="y") is importlib.import_module("math")
    monkeypatch.setitem(sys.modules, "no_such_pkg", None)
    with pytest.raises(ImportError, match=r'^widgets needs no_such_pkg: pip install "posegen\[extra\]" \(or: pip '
                                          r'install no_such_pkg\) \('):
        require("no_such_pkg.sub", extra="extra", purpose="widgets", alternative="pip install no_such_pkg")
    assert install_hint("plot") == 'pip install "posegen[plot]"'
