"""The admissible-command evaluator (``HFPolicy(choose="admissible")``) runs each prompt once and
scores its commands over the prompt's key/value cache. These tests hold it to the scoring it
replaced (``reference_policy.FullSequencePolicy``: every prompt + command in full): the same
log-probabilities on a small Qwen2 model built here and on the shipped micro policies, and item by
item the same transcripts and verdicts when the micro interactive scenarios are graded."""

from __future__ import annotations

import random
from pathlib import Path
from unittest import mock

import pytest
from reference_policy import FullSequencePolicy

import autorl_gym.interactive as interactive
from autorl_gym.core.family import resolve_assets
from autorl_gym.grading.grader import Grader
from autorl_gym.interactive import HFPolicy
from autorl_gym.scenarios.catalog import get_scenario

MICRO_INTERACTIVE = ("AutoRL-Micro-TextWorld-v0", "AutoRL-Micro-WebShop-v0", "AutoRL-Micro-DeepSearch-v0")


@pytest.fixture(scope="module")
def small_qwen2(tmp_path_factory: pytest.TempPathFactory, textworld_assets) -> Path:  # noqa: ANN001
    """A randomly initialised Qwen2 (grouped-query attention, untied head) with the micro
    TextWorld policy's tokenizer."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(str(textworld_assets.model_dir))
    torch.manual_seed(0)
    config = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, tie_word_embeddings=False,
                         pad_token_id=tok.pad_token_id or 0)
    folder = tmp_path_factory.mktemp("small-qwen2")
    Qwen2ForCausalLM(config).save_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return folder


def _pairs(seed: int) -> list[tuple[str, str]]:
    """Prompts of very different lengths, each with 1 to 12 commands (one repeated, some long),
    shuffled so that one prompt's commands are not next to each other."""
    rng = random.Random(seed)
    words = ["go", "north", "take", "the", "key", "open", "door", "west", "east", "look",
             "inventory", "unlock", "chest", "with"]
    pairs = []
    for n_words in (3, 40, 7, 180, 1, 60):
        prompt = " ".join(rng.choice(words) for _ in range(n_words)) + "\n>"
        commands = [" ".join(rng.choice(words) for _ in range(rng.randint(1, 9)))
                    for _ in range(rng.randint(1, 12))]
        pairs += [(prompt, c) for c in commands + commands[:1]]
    rng.shuffle(pairs)
    return pairs


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_cached_prompt_scores_equal_full_sequence_scores(small_qwen2: Path, textworld_assets,  # noqa: ANN001
                                                         batch_size: int) -> None:
    """Batches of one, of three (a prompt's commands split across batches, batches mixing
    prompts) and of all at once; on a small Qwen2 and on the micro policy."""
    for folder in (small_qwen2, textworld_assets.model_dir):
        pairs = _pairs(batch_size)
        new = HFPolicy(folder, choose="admissible", batch_size=batch_size).score(pairs)
        ref = FullSequencePolicy(folder, choose="admissible", batch_size=8).score(pairs)
        assert len(new) == len(pairs)
        assert new == pytest.approx(ref, abs=2e-4), folder
        assert all(v < 0 for v in new)
        # one command alone scores as it does among the others
        alone = HFPolicy(folder, choose="admissible").score(pairs[:1])
        assert alone == pytest.approx(new[:1], abs=2e-4)


def test_the_vocabulary_is_projected_only_where_a_score_reads_it(small_qwen2: Path) -> None:
    """The prompt pass asks for logits at each prompt's last position alone (``logits_to_keep``):
    the head never sees a prompt's length of positions, which for a large vocabulary would be
    batch x length x vocabulary of logits."""
    policy = HFPolicy(small_qwen2, choose="admissible", batch_size=64)
    pairs = _pairs(7)
    seen: list[int] = []
    handle = policy.model.get_output_embeddings().register_forward_hook(
        lambda _m, args, _out: seen.append(args[0].shape[1]))
    try:
        new = policy.score(pairs)
    finally:
        handle.remove()
    tok = policy.tokenizer
    longest_prompt = max(len(tok(p, add_special_tokens=False)["input_ids"]) for p, _ in pairs)
    longest_command = max(len(tok(f" {c}\n", add_special_tokens=False)["input_ids"]) for _, c in pairs)
    prompts = len({p for p, _ in pairs})
    assert seen and max(seen) <= max(prompts, longest_command) < longest_prompt, (seen, longest_prompt)
    assert new == pytest.approx(FullSequencePolicy(small_qwen2, choose="admissible").score(pairs),
                                abs=2e-4)


def test_picks_equal_full_sequence_picks(small_qwen2: Path) -> None:
    from autorl_gym.interactive.state import GameState

    rng = random.Random(1)
    batch = []
    for prompt, _ in _pairs(2)[:12]:
        cands = [f"take item {rng.randint(0, 99)}" for _ in range(rng.randint(0, 6))]
        batch.append(interactive.PolicyInput(prompt=prompt, state=GameState(
            game="g", goal="", observation="", admissible_commands=cands, max_steps=10)))
    new = HFPolicy(small_qwen2, choose="admissible", batch_size=4)(batch)
    ref = FullSequencePolicy(small_qwen2, choose="admissible", batch_size=4)(batch)
    assert new == ref
    assert [p for p, b in zip(new, batch, strict=True) if not b.state.admissible_commands] == \
        ["look"] * sum(not b.state.admissible_commands for b in batch)


def test_a_model_whose_cache_cannot_be_shared_is_scored_in_full(tmp_path: Path, textworld_assets) -> None:  # noqa: ANN001
    """A submission may be any architecture transformers builds: a state-space model (Mamba) keeps
    no per-position keys and values to share, so its commands are scored the full-sequence way
    (before the fallback its grading failed with an AttributeError)."""
    import torch
    from transformers import AutoTokenizer, MambaConfig, MambaForCausalLM

    tok = AutoTokenizer.from_pretrained(str(textworld_assets.model_dir))
    torch.manual_seed(0)
    MambaForCausalLM(MambaConfig(vocab_size=len(tok), hidden_size=32, state_size=4, num_hidden_layers=2,
                                 pad_token_id=tok.pad_token_id or 0)).save_pretrained(str(tmp_path))
    tok.save_pretrained(str(tmp_path))
    pairs = _pairs(5)[:12]
    policy = HFPolicy(tmp_path, choose="admissible", batch_size=4)
    new = policy.score(pairs)
    assert new == FullSequencePolicy(tmp_path, choose="admissible", batch_size=4).score(pairs)
    # found once: the next call runs no prompt pass first, only the three full-sequence batches
    calls: list[int] = []
    handle = policy.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        assert policy.score(pairs) == new
    finally:
        handle.remove()
    assert len(calls) == 3


def test_an_empty_prompt_is_a_clear_error(small_qwen2: Path) -> None:
    with pytest.raises(ValueError, match="empty prompt"):
        HFPolicy(small_qwen2, choose="admissible").score([("", "look")])


@pytest.mark.parametrize("scenario_id", MICRO_INTERACTIVE)
def test_micro_gradings_are_identical_item_by_item(scenario_id: str) -> None:
    """The first games of the dev split graded inline by the grader, once with each scoring: the
    same transcripts, verdicts and score."""
    sc = get_scenario(scenario_id)
    sc = sc.model_copy(update={"grader": sc.grader.model_copy(update={"isolation": "inline"})})
    assets = resolve_assets(sc, progress=False)
    grader = Grader(sc, assets)
    results = {}
    for name, policy in (("reference", FullSequencePolicy), ("new", HFPolicy)):
        with mock.patch.object(interactive, "HFPolicy", policy):
            results[name] = grader.evaluate(assets.base_model_dir, "dev", limit=12)
    ref, new = results["reference"], results["new"]
    assert len(new.items) == 12
    assert [(i.completion, i.correct) for i in new.items] == [(i.completion, i.correct) for i in ref.items]
    assert new.score == ref.score
    assert any("> " in i.completion for i in new.items)  # games were played
