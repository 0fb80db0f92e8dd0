"""The ``hf`` grader backend: transformers batched greedy generation, CPU or GPU."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autorl_gym.core.records import SubmissionError, SubmissionInfo
from autorl_gym.core.scenario import GraderSpec, Protocol
from autorl_gym.grading.submission import META_SUFFIXES
from autorl_gym.grading.warm import Memo, files_digest

log = logging.getLogger(__name__)
_TOKENIZERS = Memo(kept=4)


def pick_device(spec: str) -> str:
    import torch

    if spec != "auto":
        return spec
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(spec: str, device: str):
    import torch

    if spec == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, spec)


def load_tokenizer(primary: Path, fallback: Path):
    """The tokenizer in ``primary`` (the submission's, or the base's when it has none); kept for
    the same folder with the same files (:mod:`autorl_gym.grading.warm`)."""
    names = [n for n in os.listdir(primary) if n.endswith(META_SUFFIXES)]
    key = (str(primary), files_digest(primary, names))
    return _TOKENIZERS.get(key, lambda: _load_tokenizer(primary, fallback))


def _load_tokenizer(primary: Path, fallback: Path):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(primary))
    except Exception as e:  # noqa: BLE001 - any tokenizer failure is reported to the submitter
        what = "the base model's tokenizer" if primary == fallback else f"{primary.name}: the tokenizer"
        first = str(e).splitlines()[0][:200] if str(e) else ""
        raise SubmissionError(
            f"{what} does not load ({e.__class__.__name__}: {first}); "
            "save it with tokenizer.save_pretrained(dir) from a tokenizer loaded from model/, or "
            "remove the tokenizer files to grade with the base model's tokenizer") from e
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok, primary


def load_model(sub: SubmissionInfo, base_model_dir: Path, grader: GraderSpec):
    """The model and tokenizer of a submission (an adapter is merged into the base)."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    device = pick_device(grader.device)
    dtype = pick_dtype(grader.dtype, device)
    tok_src = sub.path if sub.has_tokenizer else base_model_dir
    tokenizer, _ = load_tokenizer(tok_src, base_model_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if sub.kind == "full":
                model = AutoModelForCausalLM.from_pretrained(str(sub.path), dtype=dtype)
            else:
                from peft import PeftModel

                base = AutoModelForCausalLM.from_pretrained(str(base_model_dir), dtype=dtype)
                model = PeftModel.from_pretrained(base, str(sub.path)).merge_and_unload()
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            what = "model" if sub.kind == "full" else "adapter"
            hint = ("; a weight's shape does not match config.json" if "mismatch" in str(e)
                    else "")
            raise SubmissionError(
                f"{sub.path.name}: the {what} does not load "
                f"({e.__class__.__name__}: {str(e).splitlines()[0][:300]}){hint}"
            ) from e
    model.to(device).eval()
    return model, tokenizer


def truncate_at_stop(text: str, stops: list[str]) -> str:
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


def generate(model: Any, tokenizer: Any, prompts: list[str], protocol: Protocol,
             batch_size: int, on_batch: Callable[[int], None] | None = None) -> list[str]:
    """Greedy completions, truncated at the protocol's stop strings; longest prompts first."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    out: list[str] = [""] * len(prompts)
    device = next(model.parameters()).device
    eos_ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    if getattr(model.generation_config, "eos_token_id", None) is not None:
        ge = model.generation_config.eos_token_id
        eos_ids |= set(ge if isinstance(ge, list) else [ge])

    # a stop string of n characters lies within the last n + slack tokens (no token is empty
    # but skipped special tokens, and those end the row anyway)
    window = max((len(x) for x in protocol.stop), default=0) + 8

    class StopOnStrings(StoppingCriteria):
        """Per row: done at an end-of-text token or a stop string. Only the newest token and a
        short tail are looked at, and a finished row is never decoded again."""

        def __init__(self, prompt_len: int, rows: int):
            self.prompt_len = prompt_len
            self.done = [False] * rows

        def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001
            new = input_ids[:, self.prompt_len:]
            tails = new[:, -window:].tolist()
            for r, tail in enumerate(tails):
                if self.done[r] or not tail:
                    continue
                if tail[-1] in eos_ids:
                    self.done[r] = True
                    continue
                text = tokenizer.decode(tail, skip_special_tokens=True)
                self.done[r] = any(s in text for s in protocol.stop)
            return torch.tensor(self.done, device=input_ids.device)

    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        batch = [prompts[i] for i in idx]
        enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(device) for k, v in enc.items()}
        plen = enc["input_ids"].shape[1]
        with torch.inference_mode():
            gen = model.generate(
                **enc, do_sample=False, max_new_tokens=protocol.max_new_tokens,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(eos_ids) or None,
                stopping_criteria=StoppingCriteriaList([StopOnStrings(plen, len(batch))]),
                temperature=None, top_p=None, top_k=None,
            )
        for i, row in zip(idx, gen[:, plen:].tolist(), strict=True):
            text = tokenizer.decode(row, skip_special_tokens=True)
            out[i] = truncate_at_stop(text, protocol.stop)
        if on_batch:
            on_batch(len(idx))
    return out
