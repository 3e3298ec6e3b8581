"""MJCF (MuJoCo XML) descriptions, read through MuJoCo's compiler into a :class:`Description`.

MuJoCo resolves defaults, ``<include>``, angle units and orientation conventions; this module only maps its
compiled model to links and joints: every body is a link, a body's joint (hinge or slide, at most one, at
the body origin) is the joint to its parent, a body without one hangs on a fixed joint, and every site is
a fixed child link (sites are the usual tool frames). Hinge joints without ``range`` are continuous; a slide
joint without one has no limits, which only matters when it is on a robot's chain.

A file is compiled from its path (:func:`compile_mjcf`), so that mesh files and ``<include>`` files named
relative to it (``<compiler meshdir=...>``, ``<mesh file=...>``) are found; text is compiled as it is. Its
collision geometry: :mod:`posegen.robots.mjcfgeometry`.

Needs the ``mujoco`` package (in the ``robots`` extra).
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from pathlib import Path
from typing import List, Optional, Union

from ..atomic import atomic_path
from ..optional import require
from .description import Description, JointSpec, xml_root

__all__ = ["parse_mjcf", "compile_mjcf", "is_mjcf", "mjcf_body_names", "mjcf_from_urdf"]

_MISSING_FILE = re.compile(r"(?:Error opening file|resource not found[^:]*:)\s*'([^']+)'")


def is_mjcf(text: str) -> bool:
    """Whether description ``text`` is MJCF: a ``<mujoco`` element and no ``<robot`` one in its first 4096
    characters (the root element decides, not the file suffix)."""
    head = text.lstrip("\ufeff \t\r\n")[:4096]
    return "<mujoco" in head and "<robot" not in head


def _mujoco(source: str):
    return require("mujoco", extra="robots", purpose=f"{source}: reading MJCF")


def compile_mjcf(text: Optional[str], source: str = "<mjcf>", path: Optional[Union[str, os.PathLike]] = None):
    """MuJoCo's compiled ``MjModel`` of the MJCF file ``path`` when given (``text`` is then not used; relative
    mesh and include files are looked up from its folder, as MuJoCo does), else of MJCF ``text``.

    Raises:
        ValueError: MuJoCo's compiler refuses the model; a file it cannot open (a mesh, an include) is named,
            with the folder it was looked for in.
        ImportError: mujoco is not installed.
    """
    mujoco = _mujoco(source)
    if text is None and path is None:
        raise ValueError(f"compile_mjcf: give the MJCF as text= or path=, got neither ({source})")
    try:
        if path is not None:
            # MuJoCo's asset cache knows files by name and modification time in whole seconds: a mesh rewritten
            # within the second would be served stale (MuJoCo 4.0.1), so it is emptied before a file is compiled
            if hasattr(mujoco, "mj_clearCache"):                     # MuJoCo >= 3.1
                mujoco.mj_clearCache(mujoco.mj_getCache())
            return mujoco.MjModel.from_xml_path(os.fspath(path))
        return mujoco.MjModel.from_xml_string(text)
    except ValueError as e:  # MuJoCo's compiler errors
        missing = _MISSING_FILE.search(str(e))
        if missing:
            where = "next to it" if path is not None else "relative to the working directory (text has no folder)"
            raise ValueError(f"{source}: MuJoCo could not open the file {missing.group(1)!r}, named in the MJCF "
                             f"(mesh and include files are looked up {where}, in <compiler meshdir=...> for "
                             f"meshes; MuJoCo says: {e})") from None
        raise ValueError(f"{source}: MuJoCo could not compile the MJCF ({e})") from None


def mjcf_from_urdf(urdf: Union[str, os.PathLike], out: Union[str, os.PathLike]) -> Path:
    """Write MuJoCo's translation of the URDF file ``urdf`` as MJCF to ``out`` (``mj_saveLastXML``) and return
    its path: every link kept as a body (``fusestatic="false"``), visual elements dropped, mesh file names read
    relative to the URDF's folder (which the MJCF names as its absolute ``meshdir``). MuJoCo rounds numbers to 6
    significant digits when it saves (joint ranges move by up to 5e-6 rad). Meshes must be STL, OBJ or MSH.

    Raises:
        ValueError: MuJoCo cannot compile the URDF (a missing mesh file is named).
    """
    urdf = Path(urdf).resolve()
    text = urdf.read_text(encoding="utf-8")
    compiler = (f'<mujoco><compiler meshdir="{urdf.parent}" strippath="false" discardvisual="true" '
                f'fusestatic="false"/></mujoco>')
    text, n = re.subn(r"(<robot\b[^>]*>)", lambda mt: mt.group(1) + compiler, text, count=1)
    if n != 1:
        raise ValueError(f"mjcf_from_urdf: {str(urdf)!r} has no <robot> element")
    with tempfile.TemporaryDirectory() as scratch:                  # the URDF with MuJoCo's compiler options
        tmp = Path(scratch) / urdf.name
        tmp.write_text(text, encoding="utf-8")
        model = compile_mjcf(None, str(urdf), tmp)
    with atomic_path(out) as xml:
        _mujoco(str(urdf)).mj_saveLastXML(str(xml), model)
    return Path(out)


def mjcf_body_names(m) -> List[str]:
    """The link name of every body of the compiled model ``m``: its name, else ``body<i>``."""
    return [m.body(i).name or f"body{i}" for i in range(m.nbody)]


def parse_mjcf(text: str, source: str = "<mjcf>", path: Optional[Union[str, os.PathLike]] = None) -> Description:
    """Parse MJCF ``text`` (compiled from the file ``path`` when given, see :func:`compile_mjcf`); ValueError
    (naming ``source``) for malformed XML, a model MuJoCo refuses, a missing mesh file or unsupported joints."""
    model_name = xml_root(text, source).get("model") or "robot"
    mujoco = _mujoco(source)
    m = compile_mjcf(text, source, path)

    hinge, slide = int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)
    body_names = mjcf_body_names(m)
    joints = []
    for b in range(1, m.nbody):
        pos = tuple(float(v) for v in m.body_pos[b])
        quat = tuple(float(v) for v in m.body_quat[b])
        parent, child = body_names[int(m.body_parentid[b])], body_names[b]
        n = int(m.body_jntnum[b])
        if n == 0:
            joints.append(JointSpec(f"{child}_fixed", "fixed", parent, child, pos, (0.0, 0.0, 0.0),
                                    (1.0, 0.0, 0.0), quat=quat))
            continue
        k = int(m.body_jntadr[b])
        name = m.joint(k).name or f"joint{k}"
        where = f"{source}: joint {name!r} of body {child!r}"
        if n > 1:
            raise ValueError(f"{where}: a body with {n} joints is not supported (one joint per body)")
        jtype = int(m.jnt_type[k])
        if jtype not in (hinge, slide):
            raise ValueError(f"{where}: only hinge and slide joints are supported (no free or ball joints)")
        if any(abs(float(v)) > 0.0 for v in m.jnt_pos[k]):
            raise ValueError(f"{where}: joint pos must be the body origin (0 0 0), got {list(m.jnt_pos[k])}")
        axis = tuple(float(v) for v in m.jnt_axis[k])
        limited = bool(m.jnt_limited[k])
        lo, hi = (float(v) for v in m.jnt_range[k])
        if jtype == hinge and not limited:
            kind, lo, hi = "continuous", None, None
        else:  # limits are checked where a robot uses the joint (description.limit_problem)
            kind = "revolute" if jtype == hinge else "prismatic"
            lo, hi = (lo, hi) if limited else (None, None)
        joints.append(JointSpec(name, kind, parent, child, pos, (0.0, 0.0, 0.0), axis, lo, hi, quat=quat))
    links = list(body_names)
    for s in range(m.nsite):
        name = m.site(s).name or f"site{s}"
        if name in links:
            raise ValueError(f"{source}: site {name!r} has the name of a body")
        links.append(name)
        joints.append(JointSpec(f"{name}_fixed", "fixed", body_names[int(m.site_bodyid[s])], name,
                                tuple(float(v) for v in m.site_pos[s]), (0.0, 0.0, 0.0), (1.0, 0.0, 0.0),
                                quat=tuple(float(v) for v in m.site_quat[s])))
    if len(set(links)) != len(links):
        raise ValueError(f"{source}: body names must be unique")
    for v in (x for j in joints for x in j.xyz + j.quat):
        if not math.isfinite(v):
            raise ValueError(f"{source}: non-finite body or site pose")
    return Description(model_name, body_names[0], tuple(links), tuple(joints), source)
