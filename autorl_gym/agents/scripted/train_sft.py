"""Supervised fine-tuning of the base model on the task's train split, with TRL, on a CPU.

Standalone (the scripted smoke-baseline agent copies it into its workspace's ``code/`` and runs
it inside the sandbox). Environment:

* ``MODEL_PATH``  the base model directory (read-only)
* ``DATA_PATH``   a directory holding ``train.jsonl``: ``question`` / ``answer`` records (GSM8K-style
  tasks) or ``prompt`` / ``canonical_solution`` records (code completion, HumanEval)
* ``OUTPUT_DIR``  where to write; the model and tokenizer are saved to ``$OUTPUT_DIR/v1``

Optional: ``SFT_EPOCHS`` (default 2), ``SFT_LR`` (default 2e-3), ``SFT_BATCH`` (default 32),
``SFT_MAX_STEPS`` (default: unlimited), ``SFT_THREADS`` (torch threads; default all cores),
``TRAIN_SECONDS`` (a time limit, the save included: training stops when the next step would pass
it and the model trained so far is saved; the scripted agent sizes it from the episode's time
left; see ``deadline.py``).

Each example is the grading prompt ``"Question: {q}\\nAnswer:"`` and the completion
``" " + answer`` (or, for code, the function's prompt and its canonical body); the loss is on the
completion only and TRL appends the end-of-text token to it, so the model learns to stop after
the ``#### N`` line (or the function). ``SFT_MAX_LENGTH`` (default 128) caps the tokens per
example.
"""

from __future__ import annotations

import json
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
    import deadline as time_limit
except ImportError:
    try:  # run from the package's own folder, where the package is importable
        from autorl_gym.agents.scripted import deadline as time_limit
    except ImportError:  # copied alone into a sandbox (no deadline.py beside it): no time limit
        time_limit = None

PROMPT = "Question: {question}\nAnswer:"
SEED = 1234


def env_path(name: str) -> Path:
    value = os.environ.get(name)
    if not value:
        sys.exit(f"train_sft.py: environment variable {name} is not set")
    return Path(value)


def load_examples(data_dir: Path) -> list[dict[str, str]]:
    """(prompt, completion) pairs from question/answer or prompt/canonical_solution records."""
    path = data_dir / "train.jsonl"
    examples = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            rec = json.loads(line)
            if "question" in rec and "answer" in rec:
                examples.append({"prompt": PROMPT.format(question=rec["question"]),
                                 "completion": " " + rec["answer"]})
            elif "prompt" in rec and "canonical_solution" in rec:
                examples.append({"prompt": rec["prompt"], "completion": rec["canonical_solution"]})
            else:
                sys.exit(f"train_sft.py: {path}:{lineno}: expected question/answer or "
                         "prompt/canonical_solution fields")
    if not examples:
        sys.exit(f"train_sft.py: no records in {path}")
    return examples


class PrintProgress(TrainerCallback):
    """One plain line per logging step (the sandbox log is not a terminal)."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
        if logs and "loss" in logs:
            print(
                f"step {state.global_step}/{state.max_steps}  loss {logs['loss']:.4f}  "
                f"lr {logs.get('learning_rate', 0.0):.2e}  {time.monotonic() - self.t0:.0f}s",
                flush=True,
            )


def main() -> None:
    model_path = env_path("MODEL_PATH")
    data_path = env_path("DATA_PATH")
    out_dir = env_path("OUTPUT_DIR") / os.environ.get("OUTPUT_NAME", "v1")
    epochs = float(os.environ.get("SFT_EPOCHS", "2"))
    lr = float(os.environ.get("SFT_LR", "2e-3"))
    batch = int(os.environ.get("SFT_BATCH", "32"))
    max_steps = int(os.environ.get("SFT_MAX_STEPS", "-1"))
    threads = int(os.environ.get("SFT_THREADS", "0")) or os.cpu_count() or 1
    max_length = int(os.environ.get("SFT_MAX_LENGTH", "128"))

    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(threads)
    t0 = time.monotonic()
    deadline = time_limit.Deadline.from_env() if time_limit else None
    print(deadline.describe() if deadline else "no time limit (deadline.py is not beside this script)",
          flush=True)

    dataset = Dataset.from_list(load_examples(data_path))
    print(f"{len(dataset)} training examples from {data_path}", flush=True)

    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(model_path)).float()
    model.config.use_cache = False

    work_dir = env_path("OUTPUT_DIR") / "trainer_state"
    config = SFTConfig(
        output_dir=str(work_dir),
        num_train_epochs=epochs,
        max_steps=max_steps,
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        warmup_steps=10,
        weight_decay=0.0,
        max_grad_norm=1.0,
        max_length=max_length,
        packing=False,
        completion_only_loss=True,
        gradient_checkpointing=False,
        bf16=False,
        fp16=False,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=SEED,
        data_seed=SEED,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[PrintProgress(), *([time_limit.stop_at_deadline(deadline)] if time_limit else [])],
    )
    trainer.remove_callback(PrinterCallback)  # PrintProgress prints one compact line instead
    trainer.train()

    model = trainer.model
    model.config.use_cache = True
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    if time_limit:
        time_limit.save_model(model, tokenizer, out_dir)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(out_dir), safe_serialization=True)
        tokenizer.save_pretrained(str(out_dir))
    print(f"saved model and tokenizer to {out_dir} in {time.monotonic() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
