"""Play text games from your own code: the same games, prompt and loop the evaluator uses.

Importable inside the sandbox (``from autorl_gym.interactive import ...``); nothing else of
``autorl_gym`` is. Typical use, e.g. to collect SFT data or score GRPO rollouts::

    from autorl_gym.interactive import (GameEnv, HFPolicy, expert_policy, find_games, rollout,
                                        scenario_settings)

    cfg = scenario_settings()                               # max_steps, prompt settings, games
    games = find_games(cfg.games)                           # the visible training games
    env = GameEnv(games[0], expert=True)
    state = env.reset()                                     # goal, observation, admissible commands
    state = env.step(state.expert_actions[0])               # won, lost, done, steps
    episodes = rollout(games, HFPolicy("model"), max_steps=cfg.max_steps, prompt=cfg.prompt)
    sft = [(t.prompt, t.action)                             # expert demonstrations
           for e in rollout(games, expert_policy, expert=True, prompt=cfg.prompt) for t in e.turns]
"""

from autorl_gym.interactive.engines import Engine, PlayEnv, engines, open_game, register_engine
from autorl_gym.interactive.env import GameEnv
from autorl_gym.interactive.games import find_games, game_ref
from autorl_gym.interactive.policy import HFPolicy, Policy, PolicyInput, expert_policy, random_policy
from autorl_gym.interactive.prompt import INTRO, PromptSpec, Turn, make_prompt, parse_action
from autorl_gym.interactive.rollout import Episode, rollout, success_rate
from autorl_gym.interactive.settings import Settings, scenario_settings
from autorl_gym.interactive.state import THINK_PREFIX, GameNotFound, GameRef, GameState

__all__ = [
    "INTRO", "THINK_PREFIX", "Engine", "Episode", "GameEnv", "GameNotFound", "GameRef", "GameState",
    "HFPolicy", "PlayEnv", "Policy", "PolicyInput", "PromptSpec", "Settings", "Turn", "engines",
    "expert_policy", "find_games", "game_ref", "make_prompt", "open_game", "parse_action",
    "random_policy", "register_engine", "rollout", "scenario_settings", "success_rate",
]
