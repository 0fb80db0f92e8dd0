"""Host-side search: web search APIs (``web``, its key from the host's environment) and the unix
socket bridge through which a sandbox reaches the host's search. The backend interface and the
registry are in :mod:`autorl_gym.interactive.search` (importable inside the sandbox too)."""
