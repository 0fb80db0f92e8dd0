"""The admissible-command scoring as it was before the prompt's cache was shared (the reference
the faster :meth:`HFPolicy.score` is compared with, item by item): every prompt + command run
through the model in full, right-padded, in batches of ``batch_size`` sequences."""

from __future__ import annotations

from autorl_gym.interactive import HFPolicy


class FullSequencePolicy(HFPolicy):
    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
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
            width = max(len(seqs[i][0]) + len(seqs[i][1]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            target = torch.zeros((len(idx), width), dtype=torch.bool)
            for r, i in enumerate(idx):
                p_ids, c_ids = seqs[i]
                n = len(p_ids) + len(c_ids)
                ids[r, :n] = torch.tensor(p_ids + c_ids)
                mask[r, :n] = 1
                target[r, len(p_ids):n] = True
            ids, mask, target = ids.to(self.device), mask.to(self.device), target.to(self.device)
            with torch.inference_mode():
                logits = self.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            logp = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
            sums = (logp * target[:, 1:]).sum(-1).tolist()
            for i, v in zip(idx, sums, strict=True):
                out[i] = v
        return out
