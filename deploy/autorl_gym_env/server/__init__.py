"""The server of autorl-gym's OpenEnv environment (``app``: the FastAPI app OpenEnv hosts)."""
