"""autorl-gym: can an AI agent post-train a language model?

``import autorl_gym`` registers every scenario id in ``scenarios/`` with Gymnasium (from the
folder's index: no scenario is loaded or validated, and no task family imported, until one is
made)::

    import gymnasium as gym
    env = gym.make("autorl_gym:AutoRL-Micro-Arith-v0")
"""

from autorl_gym.core.scenario import Scenario, ScenarioError
from autorl_gym.scenarios.catalog import get_scenario, register_all

__version__ = "0.1.0"
__all__ = ["Scenario", "ScenarioError", "get_scenario", "register_all", "__version__"]

register_all()
