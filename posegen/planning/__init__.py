"""Planning: scenes of boxes and balls, any robot's collision checker (torch) and the OMPL integration.

``posegen.planning.scene`` builds scenes; ``posegen.planning.goals`` turns grasp poses into goal configurations
(IK, collision-free; no OMPL needed); ``posegen.planning.grasp`` places an object on the table in front of a
robot with a gripper mounted on its flange (:func:`grasp_world`, :class:`GripperMount`, :data:`MOUNTS`) and
``posegen.planning.grasp_reach`` turns grasps of the object into ranked, reachable, collision-free goals with a
clear approach (:func:`reach_grasps`) and plans to the best one (:func:`plan_grasp`,
``examples/grasp_and_plan.py``); ``posegen.planning.experience`` turns earlier queries' solved paths into
training data for a learned sampler (:func:`collect_experience`); the collision checker is
:class:`posegen.robots.collision.CollisionChecker` (re-exported here; built from the robot's description and
its shipped collision table). ``posegen.planning.ompl`` needs the OMPL Python bindings
(``pip install posegen[planning]``); its names are importable from here without them and raise a clear
ImportError only when used. Every function takes the robot through its checker or ``robot=`` (default the
Panda).
"""

from .experience import Experience, collect_experience, densify_path, shortcut_path
from .goals import GraspGoals, goals_from_poses, grasp_goal_configs
from .grasp import MOUNTS, GripperMount, grasp_world
from .grasp_reach import plan_grasp, reach_grasps
from .ompl import (
                   PLANNERS,
                   VALID_SAMPLER_PLANNERS,
                   PlanResult,
                   PosegenSamplerAllocator,
                   SampleBuffer,
                   goal_states,
                   joint_space,
                   panda_space,
                   plan,
                   require_ompl,
)
from .scene import BINS, Ball, Box, CollisionChecker, PandaCollisionChecker, bin_walls, table, tabletop_scene

__all__ = [
    "Box", "Ball", "CollisionChecker", "PandaCollisionChecker", "table", "bin_walls", "BINS", "tabletop_scene",
    "require_ompl", "joint_space", "panda_space", "SampleBuffer", "PosegenSamplerAllocator", "goal_states",
    "GraspGoals", "grasp_goal_configs", "goals_from_poses", "GripperMount", "MOUNTS", "grasp_world", "reach_grasps",
    "plan_grasp", "Experience", "collect_experience", "densify_path", "shortcut_path", "PlanResult", "plan", "PLANNERS", "VALID_SAMPLER_PLANNERS",
]
