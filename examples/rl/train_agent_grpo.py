"""A minimal RL loop on an autorl-gym episode: GRPO trains a small agent policy through the TRL
environment class (:class:`autorl_gym.integrations.trl.AutoRLToolEnv`), one whole episode per rollout.

    python examples/rl/train_agent_grpo.py --out rl-run [--choices 0,10,40] [--grpo-steps 8]
        [--generations 4] [--lr 1e-3] [--model PATH]

Each rollout is a real micro-arithmetic episode (workspace, bubblewrap sandbox, grading): the
episode starts with the scripted agent's SFT script written to ``code/train_sft.py`` (its
``write_file`` is the episode's first recorded step) and a note on it appended to the task; the
policy calls the tools (one tool-calling turn by default, ``--turns``); when the rollout ends,
``get_reward`` submits ``output/v1`` if the policy submitted nothing and ends the episode as
``finish`` would, grading the best submission on test. The reward is the env's: test score minus the
baseline, in accuracy points. What the policy can learn here is *how long to train*: its ``run`` is
``sh code/train.sh N`` (SFT for N steps, the script written at reset beside ``train_sft.py``) with N
one of ``--choices`` (0 means copying the base model unchanged, which scores exactly the baseline:
reward 0; ``train.sh`` refuses an N off that menu, so such a rollout has no model and reward 0), and
GRPO moves probability toward the N whose episodes scored higher.

Without ``--model`` the policy is a tiny chat model built here (nothing is downloaded): a
byte-level BPE tokenizer trained on the prompts, Qwen2.5's chat tokens and TRL's Qwen2.5 tool
template, and a fresh 2-layer Qwen2 taught (``--teach-steps``) the first call, with every N in
``--choices`` equally often, so it starts from a uniform choice. ``--model`` takes a local chat
model whose template supports tools instead (it is not taught; it reads the note).

Writes into ``--out``: ``rewards.jsonl`` (one line per GRPO step: every rollout's choice and
reward, their mean, TRL's logged reward and the wall time), ``reward_curve.png`` (redrawn after
every step), ``workspaces/`` and ``results/`` (each episode's folder, as ``autorl-gym run``
writes them).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
    TrainerCallback,
)

from autorl_gym.integrations.trl import AutoRLToolEnv, scenario_dataset

SCRIPT = Path(__import__("autorl_gym.agents", fromlist=["_"]).__file__).parent / "scripted" / "train_sft.py"
TOOLS = ["finish", "list_files", "read_file", "run", "submit", "write_file"]  # as TRL lists them: sorted
CHAT_TOKENS = ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<tool_response>",
               "</tool_response>"]
def note(choices: list[int]) -> str:
    """What the env appends to the task at reset: the training script and its menu of N."""
    menu = ", ".join(str(c) for c in choices)
    return ("\n\nA training script is ready: `sh code/train.sh N` fine-tunes the base model for N optimizer "
            f"steps on data/train.jsonl (code/train_sft.py) and saves it to output/v1, N one of {menu}; "
            "N = 0 copies the base model there unchanged. Then submit output/v1.")


def train_sh(choices: list[int]) -> str:
    """``code/train.sh``: SFT for N steps, N from the menu (any other N is refused: no model)."""
    trained = "|".join(str(c) for c in choices if c) or "none"
    return f"""\
# sh code/train.sh N: N steps of supervised fine-tuning (code/train_sft.py) saved to output/v1;
# N = 0: the base model, unchanged; N must be one of: {" ".join(str(c) for c in choices)}
case "$1" in
  0) cp -rL model output/v1 ;;
  {trained}) SFT_MAX_STEPS="$1" SFT_THREADS=1 python code/train_sft.py ;;
  *) echo "train.sh: N must be one of: {" ".join(str(c) for c in choices)}" >&2; exit 2 ;;
esac
"""


def command(steps: int) -> str:
    """The ``run`` command of the choice ``steps`` (0: the base model, unchanged)."""
    return f"sh code/train.sh {steps}"


def choice_of(cmd: str | None) -> int | None:
    """The choice a ``run`` command made, or None when it is none of the known commands."""
    m = re.fullmatch(r"sh code/train\.sh (\d+)", cmd or "")
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------------------- the environment
class StarterKitEnv(AutoRLToolEnv):
    """:class:`AutoRLToolEnv` whose episodes start with the SFT script in ``code/`` (written by a
    recorded ``write_file`` step) and the note on it appended to the prompt; every finished
    rollout is appended to ``log`` (the command run, the reward, the episode's results folder)."""

    log: list[dict[str, Any]] = []  # shared by the instances TRL makes: one per rollout slot

    def __init__(self, choices: list[int] | None = None, **env_kwargs: Any):
        super().__init__(**env_kwargs)
        self.choices = choices or [0]
        self._commands: list[str] = []

    def reset(self, scenario: str | None = None, **row: Any) -> str:  # type: ignore[override]
        super().reset(scenario=scenario, **row)
        self.env.step({"tool": "write_file", "path": "code/train_sft.py", "content": SCRIPT.read_text()})
        self.env.step({"tool": "write_file", "path": "code/train.sh", "content": train_sh(self.choices)})
        self._commands = []
        return note(self.choices)

    def run(self, command: str, timeout_s: float | None = None) -> str:
        """Run a shell command in the sandbox, in the workspace folder.

        Args:
            command: The shell command, e.g. python code/train.py.
            timeout_s: Seconds before the command is killed (default: the scenario's limit).

        Returns:
            The exit code, the head and tail of stdout and stderr, and the seconds it took.
        """
        self._commands.append(command)
        return super().run(command, timeout_s)

    def get_reward(self) -> float:
        """Submit ``output/v1`` when the policy submitted nothing (a recorded step, not one of the
        policy's calls), then the env's reward: finish, test score minus baseline."""
        if "submit" not in self.tool_calls and "finish" not in self.tool_calls:
            self.env.step({"tool": "submit", "model_path": "output/v1"})
        reward = super().get_reward()
        first = self._commands[0] if self._commands else None
        StarterKitEnv.log.append({"choice": choice_of(first), "command": first, "reward": reward,
                                  "tool_calls": list(self.tool_calls), "results": str(self.results_dir)})
        return reward


# ---------------------------------------------------------------------------- the tiny policy
def tool_call(name: str, arguments: dict[str, Any]) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call><|im_end|>"


def tiny_policy(prompt: list[dict], tools: list, choices: list[int], teach_steps: int,
                seed: int) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast]:
    """A fresh 2-layer Qwen2 and its tokenizer, taught the episode's first call: the prompt ->
    ``run`` with each choice equally often. (Taught ``submit`` after the ``run`` result as well,
    a model this small garbled that second call; :meth:`StarterKitEnv.get_reward` submits
    ``output/v1`` for it.)"""
    from trl.chat_template_utils import qwen2_5_chat_template

    from autorl_gym.micro.tokenizer import train_tokenizer

    examples: list[tuple[list[dict], str]] = []
    for n in choices:
        run_args = {"command": command(n)}
        examples.append((prompt, tool_call("run", run_args)))
    from jinja2 import Template
    from transformers.utils import get_json_schema

    schemas = [get_json_schema(t) for t in tools]
    template = Template(qwen2_5_chat_template)
    corpus = [template.render(messages=m, tools=schemas, add_generation_prompt=True) + t for m, t in examples]
    tok = train_tokenizer(corpus * 2, vocab_size=3000)
    tok.add_special_tokens({"additional_special_tokens": CHAT_TOKENS})
    tok.model_max_length = 4096
    tok.eos_token = "<|im_end|>"
    tok.chat_template = qwen2_5_chat_template

    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        bos_token_id=None))
    batch = []
    for messages, target in examples:
        head = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
        ids_head = tok(head, add_special_tokens=False)["input_ids"]
        ids_target = tok(target, add_special_tokens=False)["input_ids"]
        batch.append((torch.tensor([ids_head + ids_target]),
                      torch.tensor([[-100] * len(ids_head) + ids_target])))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(teach_steps):
        ids, labels = batch[step % len(batch)]
        model(input_ids=ids, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model, tok


# ---------------------------------------------------------------------------- the log and the plot
class RewardLog(TrainerCallback):
    """After each GRPO step: one line of ``rewards.jsonl`` (the step's rollouts from
    :attr:`StarterKitEnv.log`) and the reward curve redrawn."""

    def __init__(self, out: Path, choices: list[int], scenario: str):
        self.out, self.choices, self.scenario = out, choices, scenario
        self.t0, self.rows = time.monotonic(), []

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        key = f"rewards/{StarterKitEnv.__name__}/mean"
        if not logs or key not in logs:
            return
        rollouts, StarterKitEnv.log[:] = list(StarterKitEnv.log), []
        rewards = [r["reward"] for r in rollouts]
        row = {"step": state.global_step, "wall_s": round(time.monotonic() - self.t0, 1),
               "reward_mean": statistics.fmean(rewards) if rewards else None,
               "trl_reward_mean": logs[key], "loss": logs.get("loss"),
               "choices": {str(c): sum(r["choice"] == c for r in rollouts) for c in self.choices},
               "rollouts": rollouts}
        self.rows.append(row)
        with (self.out / "rewards.jsonl").open("a") as f:
            f.write(json.dumps(row) + "\n")
        plot(self.rows, self.choices, self.out / "reward_curve.png", self.scenario)
        print(f"step {row['step']}: reward mean {row['reward_mean']} choices {row['choices']} "
              f"({row['wall_s']} s)", flush=True)


def plot(rows: list[dict], choices: list[int], path: Path, scenario: str = "AutoRL-Micro-Arith-v0") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, height_ratios=[3, 2])
    steps = [r["step"] for r in rows]
    for r in rows:
        top.scatter([r["step"]] * len(r["rollouts"]), [x["reward"] for x in r["rollouts"]],
                    color="0.6", s=14, zorder=2)
    top.plot(steps, [r["reward_mean"] for r in rows], marker="o", color="C0", label="mean reward per step",
             zorder=3)
    top.axhline(0, color="0.3", linewidth=0.8)
    top.set_ylabel("episode reward (test score - baseline)")
    top.legend(loc="lower right")
    bottom_base = [0.0] * len(rows)
    for i, c in enumerate(choices):
        share = [r["choices"][str(c)] / max(1, len(r["rollouts"])) for r in rows]
        bottom.bar(steps, share, bottom=bottom_base, color=f"C{i + 1}", label=f"N={c}")
        bottom_base = [a + b for a, b in zip(bottom_base, share, strict=True)]
    other = [sum(x["choice"] not in choices for x in r["rollouts"]) / max(1, len(r["rollouts"]))
             for r in rows]
    bottom.bar(steps, other, bottom=bottom_base, color="0.8", label="no valid call")
    bottom.set_ylabel("share of rollouts")
    bottom.set_ylim(0, 1.35)  # room for the legend above the bars
    bottom.set_xlabel("GRPO step")
    bottom.legend(loc="upper left", ncol=len(choices) + 1, fontsize="small")
    fig.suptitle(f"GRPO on {scenario}: the policy's choice of N in sh code/train.sh N")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("rl-run"), help="output folder (default: rl-run)")
    p.add_argument("--scenario", default="AutoRL-Micro-Arith-v0")
    p.add_argument("--choices", default="0,10,40",
                   help="the SFT_MAX_STEPS values the policy picks from, comma-separated (0: the base model)")
    p.add_argument("--grpo-steps", type=int, default=8)
    p.add_argument("--generations", type=int, default=4, help="rollouts per GRPO step (one group)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--turns", type=int, default=1,
                   help="tool-calling turns per rollout (TRL's max_tool_calling_iterations)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--teach-steps", type=int, default=300, help="the tiny policy's teaching steps")
    p.add_argument("--model", help="a local chat model with a tool template (default: the tiny policy)")
    p.add_argument("--sandbox", default="local")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import GRPOConfig, GRPOTrainer

    choices = [int(c) for c in args.choices.split(",")]
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "rewards.jsonl").unlink(missing_ok=True)
    t0 = time.monotonic()
    dataset = scenario_dataset([args.scenario], repeats=args.grpo_steps)
    probe = StarterKitEnv()
    tools = [getattr(probe, name) for name in TOOLS]
    if args.model:
        model = AutoModelForCausalLM.from_pretrained(args.model)
        tok = AutoTokenizer.from_pretrained(args.model)
    else:
        prompt = [{**dataset[0]["prompt"][0], "content": dataset[0]["prompt"][0]["content"] + note(choices)}]
        model, tok = tiny_policy(prompt, tools, choices, args.teach_steps, args.seed)
    print(f"policy ready in {time.monotonic() - t0:.0f} s", flush=True)

    def factory() -> StarterKitEnv:
        return StarterKitEnv(choices=choices, scenario=args.scenario, sandbox=args.sandbox,
                             workspace_root=out / "workspaces", results_dir=out / "results")

    config = GRPOConfig(output_dir=str(out / "trainer"), per_device_train_batch_size=args.generations,
                        num_generations=args.generations, max_completion_length=160,
                        max_tool_calling_iterations=args.turns, max_steps=args.grpo_steps,
                        learning_rate=args.lr,
                        temperature=args.temperature, logging_steps=1, report_to=[], use_cpu=True,
                        bf16=False, save_strategy="no", seed=args.seed)
    trainer = GRPOTrainer(model=model, processing_class=tok, args=config, train_dataset=dataset,
                          environment_factory=factory, callbacks=[RewardLog(out, choices, args.scenario)])
    trainer.train()
    print(f"done in {time.monotonic() - t0:.0f} s: {out / 'rewards.jsonl'}, {out / 'reward_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
