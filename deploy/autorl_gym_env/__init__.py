"""autorl-gym's episodes as an OpenEnv environment: the client and models OpenEnv's AutoEnv looks
up by its naming conventions (``autorl_gym_env`` -> ``AutorlGymEnv``, ``AutorlGymAction``,
``AutorlGymObservation``)."""

from .client import AutorlGymAction, AutorlGymEnv, AutorlGymObservation

__all__ = ["AutorlGymAction", "AutorlGymEnv", "AutorlGymObservation"]
