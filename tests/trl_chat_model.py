"""A tiny tool-calling chat model built here (nothing can be downloaded): the micro model's kind
of byte-level tokenizer (trained on the prompts) with Qwen2.5's chat tokens and TRL's Qwen2.5 chat
template (so TRL parses its tool calls), and a fresh 2-layer Qwen2 taught in half a minute to
answer a task with a ``run`` tool call and a tool result with a ``finish`` call."""

from __future__ import annotations

import json

import torch
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

CHAT_TOKENS = ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>",
               "<tool_response>", "</tool_response>"]
MARK_COMMAND = "echo trl-was-here > code/mark.txt"


def chat_tokenizer(corpus: list[str], vocab_size: int = 3000) -> PreTrainedTokenizerFast:
    """The micro model's kind of byte-level BPE, trained on ``corpus`` (the rendered prompts, so
    that they take few tokens), with the chat tokens and TRL's Qwen2.5 template."""
    from trl.chat_template_utils import qwen2_5_chat_template

    from autorl_gym.micro.tokenizer import train_tokenizer

    tok = train_tokenizer(corpus * 2, vocab_size=vocab_size)
    tok.add_special_tokens({"additional_special_tokens": CHAT_TOKENS})
    tok.model_max_length = 4096
    tok.eos_token = "<|im_end|>"
    tok.chat_template = qwen2_5_chat_template
    return tok


def call(name: str, arguments: dict) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call><|im_end|>"


def teach(tok: PreTrainedTokenizerFast, prompt: list[dict], tools: list, steps: int = 200,
          seed: int = 0) -> Qwen2ForCausalLM:
    """A fresh tiny Qwen2 trained on two turns: the prompt -> ``run(MARK_COMMAND)``, and the
    prompt, that call and its result -> ``finish()``."""
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(Qwen2Config(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        bos_token_id=None))
    run_call = {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "run", "arguments": {"command": MARK_COMMAND}}}]}
    after_run = prompt + [run_call, {"role": "tool", "name": "run", "content": "exit code: 0 (0.01 s)\n"}]
    examples = [(prompt, call("run", {"command": MARK_COMMAND})), (after_run, call("finish", {}))]
    batch = []
    for messages, target in examples:
        head = tok.apply_chat_template(messages, tools=tools, add_generation_prompt=True, tokenize=False)
        ids_head = tok(head, add_special_tokens=False)["input_ids"]
        ids_target = tok(target, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([ids_head + ids_target])
        labels = torch.tensor([[-100] * len(ids_head) + ids_target])
        batch.append((ids, labels))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        ids, labels = batch[step % len(batch)]
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model
