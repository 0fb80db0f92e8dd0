"""Policies: anything that maps a batch of prompts (with their game states) to answers.

A policy is a callable ``policy(batch: list[PolicyInput]) -> list[str]``. :class:`HFPolicy` is
the one the evaluator uses: greedy (or sampled) generation with transformers, batched.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from autorl_gym.interactive.state import GameState


class PolicyInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt: str
    state: GameState


Policy = Callable[[list[PolicyInput]], list[str]]


def expert_policy(batch: list[PolicyInput]) -> list[str]:
    """The game's expert (needs ``expert=True``); ``look`` where it has no advice."""
    return [b.state.expert_actions[0] if b.state.expert_actions else "look" for b in batch]


def random_policy(seed: int = 0) -> Policy:
    """Uniformly random admissible commands (seeded)."""
    rng = random.Random(seed)

    def act(batch: list[PolicyInput]) -> list[str]:
        return [rng.choice(b.state.admissible_commands or ["look"]) for b in batch]

    return act


class HFPolicy:
    """A causal LM from a folder (full model, or a LoRA adapter over ``base_model``).

    ``choose="generate"``: generates up to ``max_new_tokens`` after each prompt, stopping at a
    newline or end of text; greedy unless ``temperature > 0``. Longest prompts are batched together.
    ``choose="admissible"``: scores every admissible command as the completion ``" <command>\n"``
    of the prompt (sum of its tokens' log-probabilities) and answers the most likely one, so the
    answer is always a command the game accepts.
    """

    def __init__(self, model_path: str | Path, base_model: str | Path | None = None,
                 device: str = "auto", dtype: str = "auto", batch_size: int = 32,
                 max_new_tokens: int = 32, temperature: float = 0.0, stop: tuple[str, ...] = ("\n",),
                 chat_template: bool = False, choose: Literal["generate", "admissible"] = "generate"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
        if dtype == "auto":
            torch_dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        else:
            torch_dtype = getattr(torch, dtype)
        path = Path(model_path)
        tok_src = path if (path / "tokenizer_config.json").is_file() else Path(base_model or path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(tok_src))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if (path / "adapter_config.json").is_file():
            from peft import PeftModel

            if base_model is None:
                raise ValueError(f"{path} is a LoRA adapter: pass base_model=")
            base = AutoModelForCausalLM.from_pretrained(str(base_model), dtype=torch_dtype)
            self.model = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
        else:
            self.model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch_dtype)
        self.model.to(self.device).eval()
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.stop = stop
        self.chat_template = chat_template
        if choose not in ("generate", "admissible"):
            raise ValueError(f"choose must be 'generate' or 'admissible', not {choose!r}")
        self.choose = choose
        # the forward's and its output's name for a key/value cache (transformers 5.25 renamed it)
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._takes_positions = "position_ids" in params
        self._keeps_logits = "logits_to_keep" in params
        self._shares_cache = True  # until a prompt pass shows otherwise (then it never will)

    def format(self, prompt: str) -> str:
        if not self.chat_template:
            return prompt
        return self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                  add_generation_prompt=True, tokenize=False)

    def generate(self, prompts: list[str]) -> list[str]:
        import torch

        tok = self.tokenizer
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out = [""] * len(prompts)
        sample = self.temperature > 0
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            enc = tok([self.format(prompts[i]) for i in idx], return_tensors="pt", padding=True,
                      add_special_tokens=False).to(self.device)
            plen = enc["input_ids"].shape[1]
            kwargs: dict[str, Any] = {"do_sample": sample, "max_new_tokens": self.max_new_tokens,
                                      "pad_token_id": tok.pad_token_id, "tokenizer": tok,
                                      "stop_strings": list(self.stop) or None}
            if sample:
                kwargs["temperature"] = self.temperature
            else:
                kwargs.update(temperature=None, top_p=None, top_k=None)
            with torch.inference_mode():
                gen = self.model.generate(**enc, **kwargs)
            for i, row in zip(idx, gen[:, plen:].tolist(), strict=True):
                text = tok.decode(row, skip_special_tokens=True)
                for s in self.stop:
                    text = text.split(s, 1)[0] if s in text and text.split(s, 1)[0].strip() else text
                out[i] = text.strip()
        return out

    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        """Log-probability of each ``(prompt, command)``: of ``" <command>\n"`` after the prompt.

        Each distinct prompt runs through the model once; its key/value cache is then shared by
        all of its commands, which are scored as continuations (the same sums as running every
        prompt + command in full, without the prompt repeated per command). A model whose cache
        cannot be shared that way (a state-space model's, one without position ids) is scored by
        :meth:`score_full_sequences`.
        """
        if not self._shares_cache:
            return self.score_full_sequences(pairs)
        tok = self.tokenizer
        prompt_ids: dict[str, list[int]] = {}
        owners: dict[str, list[int]] = {}
        commands: list[list[int]] = []
        for k, (prompt, command) in enumerate(pairs):
            if prompt not in prompt_ids:
                ids = tok(self.format(prompt), add_special_tokens=False)["input_ids"]
                if not ids:
                    raise ValueError("an empty prompt: there is no next-token distribution to "
                                     f"score the command {command!r} with")
                prompt_ids[prompt] = ids
                owners[prompt] = []
            owners[prompt].append(k)
            commands.append(tok(f" {command}\n", add_special_tokens=False)["input_ids"])
        out = [0.0] * len(pairs)
        order = sorted(prompt_ids, key=lambda p: -len(prompt_ids[p]))
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            sums = self._continuations([prompt_ids[p] for p in chunk],
                                       [[commands[k] for k in owners[p]] for p in chunk])
            if sums is None:
                return self.score_full_sequences(pairs)
            for p, values in zip(chunk, sums, strict=True):
                for k, v in zip(owners[p], values, strict=True):
                    out[k] = v
        return out

    def _continuations(self, prompts: list[list[int]],
                       conts: list[list[list[int]]]) -> list[list[float]] | None:
        """Sum of log-probabilities of each continuation ``conts[i][j]`` after ``prompts[i]``: the
        prompts in one padded batch (their caches kept), then the continuations in batches of
        ``batch_size`` rows over their prompt's cache. None when the model's cache cannot be
        shared that way."""
        import copy

        import torch

        pad = self.tokenizer.pad_token_id
        lens = torch.tensor([len(p) for p in prompts])
        ids, mask = (t.to(self.device) for t in _right_padded(prompts, pad))
        # only the prompts' last positions need logits: the vocabulary's projection (batch x
        # length x vocabulary, gigabytes for a large vocabulary) is made at those alone
        last = lens - 1
        keep = torch.unique(last)
        kept = {"logits_to_keep": keep.to(self.device)} if self._keeps_logits else {}
        with torch.inference_mode():
            res = self.model(input_ids=ids, attention_mask=mask, use_cache=True, **kept)
            # a forward that took the argument but kept every position: index by position
            col = torch.searchsorted(keep, last) if kept and res.logits.shape[1] == len(keep) else last
            # the distribution of each continuation's first token: after its prompt's last token
            first = torch.log_softmax(res.logits[torch.arange(len(prompts)), col].float(), -1)
            cache = res.cache if self._cache_arg == "cache" else res.past_key_values
            if not (self._takes_positions and callable(getattr(cache, "batch_select_indices", None))
                    and all(hasattr(layer, "batch_select_indices")
                            for layer in getattr(cache, "layers", ()))):
                self._shares_cache = False
                return None
            rows = [(i, j) for i, c in enumerate(conts) for j in range(len(c))]
            out: list[list[float]] = [[0.0] * len(c) for c in conts]
            for start in range(0, len(rows), self.batch_size):
                part = rows[start:start + self.batch_size]
                owner = torch.tensor([i for i, _ in part])
                cids, cmask = (t.to(self.device) for t in _right_padded([conts[i][j] for i, j in part], pad))
                width, owner_d = cids.shape[1], owner.to(self.device)
                past = copy.deepcopy(cache)
                past.batch_select_indices(owner_d)
                logits = self.model(
                    input_ids=cids, attention_mask=torch.cat([mask[owner_d], cmask], 1),
                    position_ids=(lens[owner][:, None] + torch.arange(width)[None]).to(self.device),
                    use_cache=True, **{self._cache_arg: past}).logits.float()
                # token t of a continuation is predicted at its position t - 1 (t = 0: by the prompt)
                logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, cids[:, 1:, None])[..., 0]
                sums = first[owner_d, cids[:, 0]] + (logp * cmask[:, 1:]).sum(-1)
                for (i, j), v in zip(part, sums.tolist(), strict=True):
                    out[i][j] = v
        return out

    def score_full_sequences(self, pairs: list[tuple[str, str]]) -> list[float]:
        """:meth:`score` with every prompt + command run through the model in full, right-padded,
        in batches of ``batch_size`` sequences (the scoring before the prompt's cache was shared;
        for models whose cache cannot be shared, and the tests' reference)."""
        import torch

        tok = self.tokenizer
        seqs = []
        for prompt, command in pairs:
            p_ids = tok(self.format(prompt), add_special_tokens=False)["input_ids"]
            c_ids = tok(f" {command}\n", add_special_tokens=False)["input_ids"]
            seqs.append((p_ids, c_ids))
        order = sorted(range(len(seqs)), key=lambda i: -sum(map(len, seqs[i])))
        out = [0.0] * len(seqs)
        pad = tok.pad_token_id
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            ids, mask = _right_padded([seqs[i][0] + seqs[i][1] for i in idx], pad)
            target = torch.zeros_like(mask, dtype=torch.bool)
            for r, i in enumerate(idx):
                target[r, len(seqs[i][0]):len(seqs[i][0]) + len(seqs[i][1])] = True
            ids, mask, target = ids.to(self.device), mask.to(self.device), target.to(self.device)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
            sums = (logp * target[:, 1:]).sum(-1).tolist()
            for i, v in zip(idx, sums, strict=True):
                out[i] = v
        return out

    def pick(self, batch: list[PolicyInput]) -> list[str]:
        """The most likely admissible command for each input (``look`` where there are none)."""
        pairs = [(b.prompt, c) for b in batch for c in b.state.admissible_commands]
        scores = iter(self.score(pairs))
        out = []
        for b in batch:
            cands = b.state.admissible_commands
            if not cands:
                out.append("look")
                continue
            s = [next(scores) for _ in cands]
            out.append(cands[max(range(len(cands)), key=s.__getitem__)])
        return out

    def __call__(self, batch: list[PolicyInput]) -> list[str]:
        if self.choose == "admissible":
            return self.pick(batch)
        return self.generate([b.prompt for b in batch])


def _right_padded(seqs: list[list[int]], pad: int) -> tuple[Any, Any]:
    """``seqs`` (token ids) as one right-padded batch of ids and its attention mask (1 on real
    tokens), both ``long`` tensors on the CPU."""
    import torch

    ids = torch.full((len(seqs), max(len(x) for x in seqs)), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, x in enumerate(seqs):
        ids[r, :len(x)] = torch.tensor(x)
        mask[r, :len(x)] = 1
    return ids, mask
