"""The grading HTTP API: a thin HTTP adapter over the episode core.

``bodies`` (the API's pydantic models), ``service`` (:class:`GradingService`: runs as episodes,
the ledger), ``queues`` (one grading worker per device), ``middleware`` (body cap), ``bridge``
(each run's own socket into its sandbox, and the one allow-list of what a sandbox may ask),
``app`` (routes), ``serving`` (sockets, a background server, ``serve``). The typed client is
:mod:`autorl_gym.client`.
"""

from __future__ import annotations

from autorl_gym.server.app import create_app
from autorl_gym.server.service import GradingService
from autorl_gym.server.serving import ServerThread, bind_tcp, bind_unix, serve
from autorl_gym.server.settings import API_VERSION, SANDBOX_PORT, ServerSettings

__all__ = ["API_VERSION", "SANDBOX_PORT", "GradingService", "ServerSettings", "ServerThread",
           "bind_tcp", "bind_unix", "create_app", "serve"]
