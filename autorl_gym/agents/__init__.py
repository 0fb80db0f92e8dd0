"""Pluggable agents: the spec and loader (spec.py), the episode loop (loop.py), external and
command-line agents (external.py, cli_agent.py, npm_cli.py), and the built-in agent folders."""
