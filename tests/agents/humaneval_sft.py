"""Test double for the HumanEval episode: a few plain-torch SFT steps of the base model on the
visible HumanEval problems (``prompt`` -> ``canonical_solution`` + end-of-text), saved to
``$OUTPUT_DIR/v1``. Run inside the sandbox by the scripted agent (``script=`` option); the
shipped ``train_sft.py`` reads GSM8K-style ``question``/``answer`` records only.

Environment: ``MODEL_PATH``, ``DATA_PATH`` (``train.jsonl``), ``OUTPUT_DIR``; ``HE_SFT_STEPS``
(default 4).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

FIELDS = {"task_id", "prompt", "canonical_solution", "test", "entry_point"}


def main() -> None:
    model_path = Path(os.environ["MODEL_PATH"])
    data = Path(os.environ["DATA_PATH"]) / "train.jsonl"
    out = Path(os.environ["OUTPUT_DIR"]) / "v1"
    steps = int(os.environ.get("HE_SFT_STEPS", "4"))
    records = [json.loads(line) for line in data.open(encoding="utf-8") if line.strip()]
    missing = FIELDS - set(records[0]) if records else FIELDS
    if missing:
        raise SystemExit(f"{data}: no HumanEval records (missing {sorted(missing)})")
    print(f"{len(records)} visible problems", flush=True)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(steps):
        rec = records[step % len(records)]
        prompt = tok(rec["prompt"], add_special_tokens=False).input_ids
        target = tok(rec["canonical_solution"], add_special_tokens=False).input_ids + [tok.eos_token_id]
        ids = torch.tensor([prompt + target])
        labels = torch.tensor([[-100] * len(prompt) + target])
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        print(f"step {step + 1}/{steps} loss {loss.item():.3f}", flush=True)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    print(f"saved {out}", flush=True)


if __name__ == "__main__":
    main()
