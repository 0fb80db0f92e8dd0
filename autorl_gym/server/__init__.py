"""The grading HTTP API: a thin HTTP adapter over the episode core.

``bodies`` (the API's pydantic models), ``service`` (:class:`GradingService`: runs as episodes,
the ledger), ``queues`` (one grading worker per device), ``middleware`` (body cap), ``bridge``
(each run's own socket into its sandbox, and the one allow-list of what a sandbox may ask),
``app`` (routes), ``ledger`` (the sqlite ledger), ``client`` (the typed client). Sockets and
background servers are :mod:`autorl_gym.runtime.serving`; ``autorl-gym serve`` (the API with the
dashboard) is :mod:`autorl_gym.cli.serve`.
"""

from __future__ import annotations

from autorl_gym.server.app import create_app
from autorl_gym.server.service import GradingService
from autorl_gym.server.settings import API_VERSION, SANDBOX_PORT, ServerSettings

__all__ = ["API_VERSION", "SANDBOX_PORT", "GradingService", "ServerSettings", "create_app"]
