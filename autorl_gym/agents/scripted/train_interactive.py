"""SFT of a text-game policy on expert demonstrations it collects itself, with TRL, on a CPU.

Standalone: the scripted agent copies it into an interactive episode's ``code/`` and runs it in
the sandbox. It plays the visible training games through ``autorl_gym.interactive`` (the rollout
API the evaluator uses): each game once by the expert, then a few times with a noisy expert that
takes a random admissible command now and then (DAgger-style), labelling every state it visits
with the expert's command from there. Then it fine-tunes ``$MODEL_PATH`` on those
(prompt, command) pairs, in the evaluator's exact prompt format, and saves ``$OUTPUT_DIR/v1``.

Optional: ``SFT_EPOCHS`` (default 5), ``SFT_LR`` (default 2e-3), ``SFT_BATCH`` (default 16),
``NOISY_ROLLOUTS`` (default 4 per game), ``NOISE`` (default 0.5), ``SFT_THREADS``,
``SFT_MAX_LENGTH`` (tokens; default: no truncation, since the evaluator sends whole prompts too),
``COLLECT_SHARE`` (under a time limit, ``TRAIN_SECONDS``: the share of it the noisy rollouts may
use, default 0.4; the expert's rollout always runs).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
from trl import SFTConfig, SFTTrainer

try:  # the time limit (deadline.py), written beside this script by the scripted agent
    from deadline import Deadline, save_model, stop_at_deadline
except ImportError:  # run from the package's own folder, where the package is importable
    from autorl_gym.agents.scripted.deadline import Deadline, save_model, stop_at_deadline

from autorl_gym.interactive import PolicyInput, find_games, rollout, scenario_settings

SEED = 1234


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"train_interactive.py: environment variable {name} is not set")
    return Path(value)


def noisy_expert(noise: float, rng: random.Random):
    """The expert's command, but a random admissible one with probability ``noise``."""
    def act(batch: list[PolicyInput]) -> list[str]:
        out = []
        for b in batch:
            expert = b.state.expert_actions
            if expert and rng.random() >= noise:
                out.append(expert[0])
            else:
                out.append(rng.choice(b.state.admissible_commands or ["look"]))
        return out
    return act


def collect(games, cfg, rollouts: int, noise: float,  # noqa: ANN001
            deadline: Deadline | None = None) -> list[dict[str, str]]:
    """(prompt, expert command) pairs from expert and noisy-expert rollouts; under a time limit,
    no noisy rollout starts that the last one's time says would pass ``COLLECT_SHARE`` of it."""
    rng = random.Random(SEED)
    seen: set[tuple[str, str]] = set()
    records = []
    share = float(os.environ.get("COLLECT_SHARE", "0.4"))
    last = 0.0
    for r in range(rollouts + 1):
        if r > 0 and deadline is not None and deadline.share_spent(share, last):
            print(f"time limit: no more noisy rollouts after {r - 1} ({deadline.elapsed():.0f}s "
                  f"spent, the last took {last:.0f}s; {share:.0%} of the limit is for collecting)",
                  flush=True)
            break
        t_r = time.monotonic()
        policy = noisy_expert(0.0 if r == 0 else noise, rng)
        episodes = rollout(games, policy, max_steps=cfg.max_steps, prompt=cfg.prompt, expert=True)
        won = sum(e.won for e in episodes)
        print(f"rollout {r}: noise {0.0 if r == 0 else noise}, won {won}/{len(episodes)}", flush=True)
        for e in episodes:
            for t in e.turns:
                # the label is the expert's command at the state this prompt shows
                if t.expert and (t.prompt, t.expert[0]) not in seen:
                    seen.add((t.prompt, t.expert[0]))
                    records.append({"prompt": t.prompt, "completion": f" {t.expert[0]}\n"})
        last = time.monotonic() - t_r
    return records


class PrintProgress(TrainerCallback):
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if logs and "loss" in logs:
            print(f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
                  f"{time.monotonic() - self.t0:.0f}s", flush=True)


def main() -> None:
    model_path = env_path("MODEL_PATH")
    out_dir = env_path("OUTPUT_DIR") / os.environ.get("OUTPUT_NAME", "v1")
    epochs = float(os.environ.get("SFT_EPOCHS", "5"))
    lr = float(os.environ.get("SFT_LR", "2e-3"))
    batch = int(os.environ.get("SFT_BATCH", "16"))
    rollouts = int(os.environ.get("NOISY_ROLLOUTS", "4"))
    noise = float(os.environ.get("NOISE", "0.5"))
    max_length = int(os.environ["SFT_MAX_LENGTH"]) if os.environ.get("SFT_MAX_LENGTH") else None
    threads = int(os.environ.get("SFT_THREADS", "0")) or os.cpu_count() or 1
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(threads)
    t0 = time.monotonic()
    deadline = Deadline.from_env()
    print(deadline.describe(), flush=True)

    cfg = scenario_settings()
    games = find_games(cfg.games)
    print(f"{len(games)} training games in {cfg.games}", flush=True)
    records = collect(games, cfg, rollouts, noise, deadline)
    print(f"{len(records)} (prompt, expert command) pairs in {time.monotonic() - t0:.0f}s", flush=True)
    if not records:
        sys.exit("train_interactive.py: the expert labelled no state (do the games have walkthroughs?)")

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_path)).float()
    model.config.use_cache = False
    config = SFTConfig(
        output_dir=str(env_path("OUTPUT_DIR") / "trainer_state"), num_train_epochs=epochs,
        per_device_train_batch_size=batch, learning_rate=lr, lr_scheduler_type="cosine",
        warmup_steps=20, weight_decay=0.0, max_grad_norm=1.0, max_length=max_length, packing=False,
        completion_only_loss=True, bf16=False, fp16=False, use_cpu=True, report_to="none",
        save_strategy="no", logging_steps=10, disable_tqdm=True, dataloader_num_workers=0,
        seed=SEED, data_seed=SEED,
    )
    trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(records),
                         processing_class=tokenizer,
                         callbacks=[PrintProgress(), stop_at_deadline(deadline)])
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    model = trainer.model
    model.config.use_cache = True
    save_model(model, tokenizer, out_dir)
    print(f"saved model and tokenizer to {out_dir} in {time.monotonic() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
