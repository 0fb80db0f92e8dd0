"""GRPO on the task's train split with TRL's GRPOTrainer, on a CPU; the reward is the grader's
strict answer check.

Standalone stage script of the scripted agent (``recipe=grpo``, ``recipe=sft+grpo``): copied into
the workspace's ``code/`` and run inside the sandbox. Environment:

* ``MODEL_PATH``  the model to start from (the base model, or the previous stage's output)
* ``DATA_PATH``   a directory holding ``train.jsonl`` with ``question`` / ``answer`` records, each
  answer ending in ``#### N``
* ``OUTPUT_DIR``  where to write; the model and tokenizer go to ``$OUTPUT_DIR/$OUTPUT_NAME``
  (default ``v1``)

Optional: ``GRPO_MAX_STEPS`` (default 60), ``GRPO_LR`` (default 5e-4), ``GRPO_PROMPTS`` (prompts
per step, default 8), ``GRPO_GENERATIONS`` (completions per prompt, default 8),
``GRPO_MAX_COMPLETION`` (new tokens per completion, default 64), ``GRPO_TEMPERATURE`` (default
1.0), ``GRPO_BETA`` (KL weight, default 0.0), ``GRPO_THREADS`` (torch threads; default all cores).

Each prompt is the grading prompt ``"Question: {q}\\nAnswer:"``; a completion is cut where the
grader stops generating (a blank line, ``Question:``) and earns 1.0 when its answer, read by the
grader's own strict check (``answers.py``, copied from ``autorl_gym/core/answers.py`` beside this
script: lm-eval's strict-match), equals the reference, else 0.0: exactly the score it will get.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import torch

try:  # the package's own answer check (autorl_gym/core/answers.py), written beside this script
    from answers import extract_strict, is_correct, reference_answer
except ImportError:  # run from the package's own folder, where the package is importable
    from autorl_gym.core.answers import extract_strict, is_correct, reference_answer
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
from trl import GRPOConfig, GRPOTrainer

try:  # the time limit (deadline.py), written beside this script by the scripted agent
    from deadline import Deadline, save_model, stop_at_deadline
except ImportError:  # run from the package's own folder, where the package is importable
    from autorl_gym.agents.scripted.deadline import Deadline, save_model, stop_at_deadline

PROMPT = "Question: {question}\nAnswer:"
STOP = ("\n\n", "Question:")
SEED = 1234


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"train_grpo.py: environment variable {name} is not set")
    return Path(value)


def gold(answer_field: str) -> str | None:
    """The reference answer as the grader reads it (None for a record without one)."""
    try:
        return reference_answer(answer_field)
    except ValueError:
        return None


def graded_part(completion: str) -> str:
    """The completion as the grader sees it: cut at its first stop string."""
    for stop in STOP:
        completion = completion.split(stop, 1)[0]
    return completion


def strict_reward(completions: list[str], answer: list[str], **_: object) -> list[float]:
    """1.0 where the completion's answer is right as the grader's strict check reads it."""
    return [float(is_correct(extract_strict(graded_part(c)), reference_answer(a)))
            for c, a in zip(completions, answer, strict=True)]


def load_prompts(data_dir: Path) -> list[dict[str, str]]:
    path = data_dir / "train.jsonl"
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            rec = json.loads(line)
            if "question" not in rec or gold(str(rec.get("answer", ""))) is None:
                sys.exit(f"train_grpo.py: {path}:{lineno}: expected question/answer fields with a "
                         "'#### N' answer")
            rows.append({"prompt": PROMPT.format(question=rec["question"]), "answer": rec["answer"]})
    if not rows:
        sys.exit(f"train_grpo.py: no records in {path}")
    return rows


class PrintProgress(TrainerCallback):
    """One plain line per logging step (the sandbox log is not a terminal)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if logs and "reward" in logs:
            print(f"step {state.global_step}/{state.max_steps}  reward {logs['reward']:.3f}  "
                  f"{time.monotonic() - self.t0:.0f}s", flush=True)


def main() -> None:
    model_path = env_path("MODEL_PATH")
    data_path = env_path("DATA_PATH")
    out_dir = env_path("OUTPUT_DIR") / os.environ.get("OUTPUT_NAME", "v1")
    steps = int(os.environ.get("GRPO_MAX_STEPS", "60"))
    lr = float(os.environ.get("GRPO_LR", "5e-4"))
    prompts = int(os.environ.get("GRPO_PROMPTS", "8"))
    gens = int(os.environ.get("GRPO_GENERATIONS", "8"))
    max_new = int(os.environ.get("GRPO_MAX_COMPLETION", "64"))
    temperature = float(os.environ.get("GRPO_TEMPERATURE", "1.0"))
    beta = float(os.environ.get("GRPO_BETA", "0.0"))
    threads = int(os.environ.get("GRPO_THREADS", "0")) or os.cpu_count() or 1

    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(threads)
    t0 = time.monotonic()
    deadline = Deadline.from_env()
    print(deadline.describe(), flush=True)
    dataset = Dataset.from_list(load_prompts(data_path))
    print(f"{len(dataset)} training prompts from {data_path}", flush=True)

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_path)).float()

    config = GRPOConfig(
        output_dir=str(env_path("OUTPUT_DIR") / "trainer_state"),
        max_steps=steps,
        per_device_train_batch_size=prompts * gens,
        num_generations=gens,
        max_completion_length=max_new,
        temperature=temperature,
        beta=beta,
        learning_rate=lr,
        lr_scheduler_type="constant_with_warmup",
        warmup_steps=min(5, steps),
        max_grad_norm=1.0,
        gradient_checkpointing=False,
        use_cpu=True,
        bf16=False,
        fp16=False,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=SEED,
        data_seed=SEED,
    )
    trainer = GRPOTrainer(model=model, reward_funcs=strict_reward, args=config,
                          train_dataset=dataset, processing_class=tokenizer,
                          callbacks=[PrintProgress(), stop_at_deadline(deadline)])
    trainer.remove_callback(PrinterCallback)
    trainer.train()

    model = trainer.model
    model.config.use_cache = True
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    save_model(model, tokenizer, out_dir)
    print(f"saved model and tokenizer to {out_dir} in {time.monotonic() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
