"""The episode loop: one agent acting on one env until the episode ends."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from autorl_gym.agents.spec import Agent

StepCallback = Callable[[int, Any, str, dict[str, Any]], None]


def run_episode(env: Any, agent: Agent, seed: int | None = None,
                on_step: StepCallback | None = None) -> dict[str, Any]:
    """Run one episode to its end; returns the last info (with ``feedback``), plus
    ``agent_time_s``: the seconds each ``act()`` took (the agent's own time, which the
    wall-clock budget counts since it runs from ``reset()``).

    An agent that raises ends the episode (its best submission graded on test, the results
    saying which error ended it, not that the agent finished) and the error goes on up; an
    interrupt (Ctrl-C) abandons it, saying so."""
    obs, info = env.reset(seed=seed)
    agent.reset(obs, info)
    step = 0
    agent_time: list[float] = []
    episode = getattr(env.unwrapped, "episode", None)
    while True:
        t0 = time.perf_counter()
        try:
            action = agent.act(obs)
        except KeyboardInterrupt:
            if episode is not None:
                episode.abandon("interrupted (Ctrl-C) before the agent finished")
            raise
        except Exception as e:
            if episode is not None and episode.active:
                episode.end(f"the agent crashed ({e.__class__.__name__}: {str(e)[:300]}) "
                            "before it called finish")
            raise
        agent_time.append(time.perf_counter() - t0)
        obs, _reward, terminated, truncated, info = env.step(action)
        step += 1
        if on_step:
            on_step(step, action, obs, info)
        if terminated or truncated:
            info["agent_time_s"] = agent_time
            return info
