"""MJCF (MuJoCo XML) descriptions, read through MuJoCo's compiler into a :class:`Description`.

MuJoCo resolves defaults, ``<include>``, angle units and orientation conventions; this module only maps its
compiled model to links and joints: every body is a link, a body's joint (hinge or slide, at most one, at
the body origin) is the joint to its parent, a body without one hangs on a fixed joint, and every site is
a fixed child link (sites are the usual tool frames). Hinge joints without ``range`` are continuous; a slide
joint without one has no limits, which only matters when it is on a robot's chain.

Needs the ``mujoco`` package (in the ``robots`` extra).
"""

from __future__ import annotations

import math

from .description import Description, JointSpec, xml_root

__all__ = ["parse_mjcf"]


def parse_mjcf(text: str, source: str = "<mjcf>") -> Description:
    """Parse MJCF text; ValueError (naming ``source``) for malformed XML or unsupported joints."""
    model_name = xml_root(text, source).get("model") or "robot"
    try:
        import mujoco
    except ImportError as e:
        raise ImportError(f'{source}: reading MJCF needs mujoco: pip install "posegen[robots]" ({e})') from e
    try:
        m = mujoco.MjModel.from_xml_string(text)
    except ValueError as e:  # MuJoCo's compiler errors
        raise ValueError(f"{source}: MuJoCo could not compile the MJCF ({e})") from None

    hinge, slide = int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)
    body_names = [m.body(i).name or f"body{i}" for i in range(m.nbody)]
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
