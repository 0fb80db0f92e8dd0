"""The client of autorl-gym's OpenEnv server: :class:`autorl_gym.integrations.openenv.AutoRLClient`
(OpenEnv's MCP tool client, its results typed), under OpenEnv's conventional name."""

from autorl_gym.integrations.openenv import AutoRLClient

try:
    from .models import AutorlGymAction, AutorlGymObservation
except ImportError:  # imported as a top-level module from this folder
    from models import AutorlGymAction, AutorlGymObservation  # type: ignore[no-redef]


class AutorlGymEnv(AutoRLClient):
    """``async with AutorlGymEnv(base_url=...) as env: await env.reset(scenario=...)``."""


__all__ = ["AutorlGymAction", "AutorlGymEnv", "AutorlGymObservation"]
