"""The action and observation of autorl-gym's OpenEnv server, under OpenEnv's conventional names:
an action is one MCP tool call (``tool_name``, ``arguments``); an observation is the tool's text
(``result``) with the step's reward and ``done``."""

from openenv.core.env_server.mcp_types import CallToolAction

from autorl_gym.integrations.openenv import EpisodeObservation, EpisodeState

AutorlGymAction = CallToolAction
AutorlGymObservation = EpisodeObservation
AutorlGymState = EpisodeState

__all__ = ["AutorlGymAction", "AutorlGymObservation", "AutorlGymState"]
