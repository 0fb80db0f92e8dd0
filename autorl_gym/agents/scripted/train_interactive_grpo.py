"""GRPO of a text-game policy on online rollouts of the visible training games, on a CPU.

Standalone: the scripted agent copies it into an interactive episode's ``code/`` and runs it in
the sandbox after ``train_interactive.py`` (recipe ``sft+grpo``), with ``MODEL_PATH`` set to the
SFT stage's model. It plays the training games through ``autorl_gym.interactive`` (the rollout
API the evaluator uses: ``open_game``, ``make_prompt``, ``parse_action`` and the scenario's
settings), in the evaluator's exact prompt format and action-selection mode: with
``choose: admissible`` the evaluator plays the admissible command whose completion
``" <command>\\n"`` the model finds most likely, so the policy trained here is the softmax of
those log-likelihoods over the admissible commands (divided by ``TEMPERATURE``), and its greedy
choice is the evaluator's.

Each iteration samples ``GAMES`` training games, plays each ``GROUP`` times with the sampling
policy, and takes as every episode's advantage its return (1 if won, else the game's reward,
less ``STEP_COST`` times the fraction of ``max_steps`` it took) minus its group's mean, divided
by the group's standard deviation (GRPO's group-relative advantage; a group that all won or all
lost teaches nothing and is skipped). The loss is ``-advantage * log pi(command | prompt)``
summed over the episode's steps, averaged over the episodes: one on-policy step per batch, so
GRPO's clipped ratio is 1 and the loss is plain REINFORCE with the group baseline. Identical
(prompt, command) steps of a group are merged. Saves ``$OUTPUT_DIR/$OUTPUT_NAME`` (default
``v1``).

Why not TRL's ``GRPOTrainer``: it is single-turn (one completion per prompt, a reward per
completion) and generates freely, while an episode here is many steps whose reward comes at the
end, and the evaluator does not generate but ranks the admissible commands.

Optional knobs: ``GRPO_ITERS`` (default 30), ``GAMES`` (training games per iteration, default
16), ``GROUP`` (rollouts per game, default 8), ``LR`` (default 3e-4), ``TEMPERATURE`` (default
5.0: the SFT policy wins nearly every training game at 1.0, so its groups would teach nothing),
``STEP_COST`` (subtracted from the return per step, as a fraction of ``max_steps``; default 0.2,
so shorter wins rank higher), ``GRPO_BATCH`` (commands scored per forward pass, default 512),
``THREADS`` (torch threads, default: the CPU count), ``GRPO_MAX_SECONDS`` (hard wall-clock cap
on the whole script: no iteration starts that the last one's time says would pass it, default
480; the scripted agent's ``TRAIN_SECONDS``, less the time kept to save, caps it too),
``GRPO_SEED``.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections import OrderedDict
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

try:  # the time limit (deadline.py), written beside this script by the scripted agent
    from deadline import Deadline, save_model
except ImportError:  # run from the package's own folder, where the package is importable
    from autorl_gym.agents.scripted.deadline import Deadline, save_model

from autorl_gym.interactive import find_games, make_prompt, open_game, parse_action, scenario_settings
from autorl_gym.interactive.prompt import Turn


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"train_interactive_grpo.py: environment variable {name} is not set")
    return Path(value)


def knob(name: str, default: str, kind=float):  # noqa: ANN001, ANN201
    raw = os.environ.get(name, default)
    try:
        value = kind(raw)
    except ValueError:
        sys.exit(f"train_interactive_grpo.py: {name}={raw!r} is not a {kind.__name__}")
    if value < 0:
        sys.exit(f"train_interactive_grpo.py: {name} must not be negative, not {raw!r}")
    return value


class Scorer:
    """Sum log-probabilities of ``" <command>\\n"`` after a prompt, for every command of a state.

    Each prompt is run once (left-padded, a batch of states at a time) and its key/value cache is
    shared by its commands, which are run after it: the same numbers as scoring every
    (prompt, command) sequence whole, as ``HFPolicy.score`` does, for a fraction of the work."""

    def __init__(self, model, tokenizer, batch: int):  # noqa: ANN001
        self.model, self.tok, self.batch = model, tokenizer, max(1, batch)
        self._ids: dict[str, list[int]] = {}

    def ids(self, text: str) -> list[int]:
        if text not in self._ids:
            self._ids[text] = self.tok(text, add_special_tokens=False)["input_ids"]
        return self._ids[text]

    def __call__(self, states: list[tuple[str, list[str]]]) -> list[torch.Tensor]:
        """Per state, the log-probability of each of its commands (a tensor)."""
        out: list[torch.Tensor] = []
        start = 0
        while start < len(states):  # states in chunks of about ``batch`` commands
            end, n = start, 0
            while end < len(states) and (end == start or n + len(states[end][1]) <= self.batch):
                n += len(states[end][1])
                end += 1
            out += self._score(states[start:end])
            start = end
        return out

    def _score(self, states: list[tuple[str, list[str]]]) -> list[torch.Tensor]:
        pad = self.tok.pad_token_id
        prompts = [self.ids(p) for p, _ in states]
        width = max(map(len, prompts))
        p_ids = torch.full((len(states), width), pad, dtype=torch.long)
        p_mask = torch.zeros((len(states), width), dtype=torch.long)
        for r, ids in enumerate(prompts):  # left-padded: every prompt ends at the last column
            p_ids[r, width - len(ids):] = torch.tensor(ids)
            p_mask[r, width - len(ids):] = 1
        p_pos = (p_mask.cumsum(-1) - 1).clamp(min=0)
        res = self.model(input_ids=p_ids, attention_mask=p_mask, position_ids=p_pos, use_cache=True)
        owner = [r for r, (_, cands) in enumerate(states) for _ in cands]
        cmds = [self.ids(f" {c}\n") for _, cands in states for c in cands]
        idx = torch.tensor(owner)
        c_width = max(map(len, cmds))
        c_ids = torch.full((len(cmds), c_width), pad, dtype=torch.long)
        c_mask = torch.zeros((len(cmds), c_width), dtype=torch.long)
        for r, ids in enumerate(cmds):
            c_ids[r, :len(ids)] = torch.tensor(ids)
            c_mask[r, :len(ids)] = 1
        cache = res.cache
        cache.reorder_cache(idx)  # each command gets its prompt's keys and values
        lens = p_mask.sum(-1)[idx]
        c_pos = lens[:, None] + torch.arange(c_width)[None, :]
        logits = self.model(input_ids=c_ids, attention_mask=torch.cat([p_mask[idx], c_mask], -1),
                            position_ids=c_pos, cache=cache, use_cache=True).logits.float()
        # the first command token is predicted by the prompt's last position
        logits = torch.cat([res.logits[idx, -1:].float(), logits[:, :-1]], 1)
        logp = torch.log_softmax(logits, -1).gather(-1, c_ids[..., None])[..., 0]
        sums = (logp * c_mask).sum(-1)
        out, k = [], 0
        for _, cands in states:
            out.append(sums[k:k + len(cands)])
            k += len(cands)
        return out


def log_policy(scorer: Scorer, states: list[tuple[str, list[str]]], temperature: float) -> list[torch.Tensor]:
    """log pi over each state's admissible commands (a state: prompt and its commands)."""
    return [torch.log_softmax(s / max(temperature, 1e-6), -1) for s in scorer(states)]


class EnvPool:
    """Started games, kept for the next iteration (starting a game costs far more than a reset):
    at most ``size``, the least recently used closed first."""

    def __init__(self, max_steps: int, size: int):
        self.max_steps, self.size = max_steps, max(1, size)
        self.envs: OrderedDict[str, object] = OrderedDict()

    def get(self, ref):  # noqa: ANN001, ANN201
        key = str(ref.path)
        if key in self.envs:
            self.envs.move_to_end(key)
        else:
            self.envs[key] = open_game(ref, max_steps=self.max_steps)
            while len(self.envs) > self.size:
                self.envs.popitem(last=False)[1].close()
        return self.envs[key]

    def close(self) -> None:
        while self.envs:
            self.envs.popitem()[1].close()


def play(refs, pool: EnvPool, scorer: Scorer, cfg, temperature: float, step_cost: float,  # noqa: ANN001, ANN201
         rng: random.Random):  # noqa: ANN001, ANN201
    """Play every game (distinct games) once, sampling from the policy, all at once; per episode:
    its return and its steps as (prompt, admissible commands, index of the command played). A
    game that fails to start or step ends lost, and its started copy is dropped."""
    envs, states, errors = [], [], [False] * len(refs)
    for i, ref in enumerate(refs):
        try:
            envs.append(pool.get(ref))
            states.append(envs[-1].reset())
        except Exception as e:  # noqa: BLE001 - one broken game must not stop the others
            print(f"{ref.name}: reset failed: {e.__class__.__name__}: {e}", flush=True)
            envs.append(None)
            states.append(None)
            errors[i] = True
    turns: list[list[Turn]] = [[] for _ in refs]
    steps: list[list[tuple[str, tuple[str, ...], int]]] = [[] for _ in refs]
    while active := [i for i, s in enumerate(states)
                     if not errors[i] and not s.done and s.admissible_commands]:
        batch = [(make_prompt(states[i], turns[i], cfg.prompt), states[i].admissible_commands)
                 for i in active]
        with torch.no_grad():
            logps = log_policy(scorer, batch, temperature)
        for i, (prompt, cands), lp in zip(active, batch, logps, strict=True):
            choice = rng.choices(range(len(cands)), weights=lp.exp().tolist())[0]
            action = parse_action(cands[choice], cands)
            try:
                st = envs[i].step(action)
            except Exception as e:  # noqa: BLE001
                print(f"{refs[i].name}: step failed: {e.__class__.__name__}: {e}", flush=True)
                errors[i] = True
                pool.envs.pop(str(refs[i].path), None)
                continue
            steps[i].append((prompt, tuple(cands), choice))
            turns[i].append(Turn(prompt=prompt, completion=action, action=action,
                                 observation=st.observation, admissible=True, won=st.won))
            states[i] = st
    returns = [0.0 if err else (1.0 if s.won else float(s.reward)) - step_cost * s.steps / cfg.max_steps
               for s, err in zip(states, errors, strict=True)]
    return returns, steps


def play_groups(games, pool: EnvPool, scorer: Scorer, cfg, temperature: float, step_cost: float,  # noqa: ANN001, ANN201
                group: int, rng: random.Random):
    """``group`` rollouts of each game, one wave of all games after another (one started copy of
    each game); returns and steps ordered game by game, a game's group contiguous."""
    waves = [play(games, pool, scorer, cfg, temperature, step_cost, rng) for _ in range(group)]
    returns = [waves[k][0][j] for j in range(len(games)) for k in range(group)]
    steps = [waves[k][1][j] for j in range(len(games)) for k in range(group)]
    return returns, steps


def group_advantages(returns: list[float], group: int) -> list[float]:
    """Each return minus its group's mean, over the group's standard deviation (0 if all equal)."""
    adv = []
    for g in range(0, len(returns), group):
        r = returns[g:g + group]
        mean = sum(r) / len(r)
        std = math.sqrt(sum((x - mean) ** 2 for x in r) / len(r))
        adv += [(x - mean) / std if std > 1e-6 else 0.0 for x in r]
    return adv


def update(scorer: Scorer, opt, steps, adv: list[float], temperature: float) -> tuple[float, int]:  # noqa: ANN001
    """One policy-gradient step; identical steps are merged with their advantages summed."""
    weights: dict[tuple[str, tuple[str, ...], int], float] = {}
    for ep_steps, a in zip(steps, adv, strict=True):
        if a:
            for key in ep_steps:
                weights[key] = weights.get(key, 0.0) + a
    keys = [k for k, w in weights.items() if abs(w) > 1e-9]
    if not keys:
        return 0.0, 0
    n_episodes = sum(1 for a in adv if a)
    opt.zero_grad()
    total = 0.0
    for start in range(0, len(keys), 64):  # a chunk of states per backward pass bounds memory
        chunk = keys[start:start + 64]
        logps = log_policy(scorer, [(p, list(c)) for p, c, _ in chunk], temperature)
        loss = -sum(weights[k] * lp[k[2]] for k, lp in zip(chunk, logps, strict=True)) / n_episodes
        loss.backward()
        total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_(scorer.model.parameters(), 1.0)
    opt.step()
    return total, len(keys)


def main() -> None:
    t0 = time.monotonic()
    model_path = env_path("MODEL_PATH")
    out_dir = env_path("OUTPUT_DIR") / os.environ.get("OUTPUT_NAME", "v1")
    iters = knob("GRPO_ITERS", "30", int)
    n_games = knob("GAMES", "16", int)
    group = knob("GROUP", "8", int)
    lr = knob("LR", "3e-4")
    temperature = knob("TEMPERATURE", "5.0")
    step_cost = knob("STEP_COST", "0.2")
    batch = knob("GRPO_BATCH", "512", int)
    threads = knob("THREADS", "0", int) or os.cpu_count() or 1
    cap = knob("GRPO_MAX_SECONDS", "480")
    deadline = Deadline.from_env()
    if deadline.limited:  # the agent's time limit (TRAIN_SECONDS, less the save) caps it too
        cap = min(cap, max(0.0, deadline.left() + time.monotonic() - t0))
    seed = knob("GRPO_SEED", "1234", int)
    if group < 2:
        sys.exit("train_interactive_grpo.py: GROUP must be at least 2 (advantages are group-relative)")
    rng = random.Random(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)

    cfg = scenario_settings()
    if cfg.choose != "admissible":
        sys.exit(f"train_interactive_grpo.py: the evaluator's choose is {cfg.choose!r}; this stage "
                 "trains the admissible-choice policy (choose: admissible) only")
    games = find_games(cfg.games)
    if not games:
        sys.exit(f"train_interactive_grpo.py: no training games in {cfg.games}")
    print(f"{len(games)} training games in {cfg.games}; {iters} iterations of {min(n_games, len(games))} "
          f"games x {group} rollouts, lr {lr}, temperature {temperature}, cap {cap:.0f}s", flush=True)

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_path)).float()
    model.config.use_cache = False
    model.train()
    scorer = Scorer(model, tokenizer, batch)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    pool = EnvPool(cfg.max_steps, knob("POOL", "256", int))
    last = 0.0
    for it in range(1, iters + 1):
        elapsed = time.monotonic() - t0
        if elapsed + last > cap:
            print(f"stopping before iteration {it}: {elapsed:.0f}s spent, the last took {last:.0f}s, "
                  f"cap {cap:.0f}s", flush=True)
            break
        t_it = time.monotonic()
        picked = rng.sample(games, min(n_games, len(games)))
        returns, steps = play_groups(picked, pool, scorer, cfg, temperature, step_cost, group, rng)
        adv = group_advantages(returns, group)
        loss, n_states = update(scorer, opt, steps, adv, temperature)
        last = time.monotonic() - t_it
        n_steps = sum(map(len, steps))
        print(f"iteration {it}/{iters}  sampled win rate {100 * sum(returns) / len(returns):.1f}%  "
              f"{n_steps} steps, {n_states} distinct states trained  loss {loss:+.4f}  "
              f"{last:.0f}s (total {time.monotonic() - t0:.0f}s)", flush=True)

    pool.close()
    model.eval()
    model.config.use_cache = True
    save_model(model, tokenizer, out_dir)
    print(f"saved model and tokenizer to {out_dir} in {time.monotonic() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
