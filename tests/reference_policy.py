"""The admissible-command scoring as it was before the prompt's cache was shared, the reference
the faster :meth:`HFPolicy.score` is compared with item by item: every prompt + command run
through the model in full, right-padded, in batches of ``batch_size`` sequences (the package keeps
it as :meth:`HFPolicy.score_full_sequences`, for models whose cache cannot be shared)."""

from __future__ import annotations

from autorl_gym.interactive import HFPolicy


class FullSequencePolicy(HFPolicy):
    def score(self, pairs: list[tuple[str, str]]) -> list[float]:
        return self.score_full_sequences(pairs)
