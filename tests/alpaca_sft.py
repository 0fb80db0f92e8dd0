"""A few steps of supervised fine-tuning on Alpaca-format data, with plain torch (runs inside the
sandbox in the AlpacaEval episode test): MODEL_PATH, DATA_PATH/train.jsonl -> OUTPUT_DIR/v1."""

import json
import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.manual_seed(0)
torch.set_num_threads(2)
tok = AutoTokenizer.from_pretrained(os.environ["MODEL_PATH"])
model = AutoModelForCausalLM.from_pretrained(os.environ["MODEL_PATH"], dtype=torch.float32)
rows = [json.loads(x) for x in Path(os.environ["DATA_PATH"], "train.jsonl").read_text().splitlines()]
texts = [f"Question: {r['instruction']}\nAnswer: {r['output']}{tok.eos_token}" for r in rows]
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
model.train()
for step in range(int(os.environ.get("SFT_STEPS", "6"))):
    batch = tok(texts[(step * 8) % len(texts):][:8], return_tensors="pt", padding=True,
                truncation=True, max_length=128)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    loss = model(**batch, labels=labels).loss
    loss.backward()
    opt.step()
    opt.zero_grad()
    print(f"step {step} loss {loss.item():.3f}", flush=True)
out = Path(os.environ["OUTPUT_DIR"]) / "v1"
model.save_pretrained(out)
tok.save_pretrained(out)
print("saved", out)
