"""Planning: a cheap, approximate Panda collision scene (torch) and OMPL integration.

``posegen.planning.scene`` needs only torch. ``posegen.planning.ompl`` needs the OMPL Python bindings
(``pip install posegen[planning]``); its names are importable from here without them and raise a clear
ImportError only when used.
"""

from .ompl import (PLANNERS, VALID_SAMPLER_PLANNERS, GraspGoals, PlanResult, PosegenSamplerAllocator,
                   SampleBuffer, goal_states, grasp_goal_configs, panda_space, plan, require_ompl)
from .scene import BINS, PANDA_SPHERES, Ball, Box, PandaCollisionChecker, bin_walls, table, tabletop_scene

__all__ = [
    "Box", "Ball", "PANDA_SPHERES", "PandaCollisionChecker", "table", "bin_walls", "BINS", "tabletop_scene",
    "require_ompl", "panda_space", "SampleBuffer", "PosegenSamplerAllocator", "goal_states", "GraspGoals",
    "grasp_goal_configs", "PlanResult", "plan", "PLANNERS", "VALID_SAMPLER_PLANNERS",
]
