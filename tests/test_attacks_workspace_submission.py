"""Issue 25 items 1 and 2 and the earlier submission attacks, each run as the attack suite runs
it (a real episode on the micro scenario): every one must hold, on ``local`` and, where the
sandbox makes the links and files, on ``docker`` too."""

from __future__ import annotations

import pytest

from autorl_gym.attacks.runner import run_attacks
from autorl_gym.core.integrity import read_events

MICRO_ID = "AutoRL-Micro-Arith-v0"

# made by the agent's own commands in the sandbox: the backend matters
IN_SANDBOX = [
    "code_dir_links_to_grader_cache", "code_dir_links_to_host_file", "link_inside_code_to_host_file",
    "newline_name_hides_file", "control_characters_in_command_blind_history",
    "submission_links_to_base_model", "submission_links_outside_workspace",
    "output_dir_is_a_link", "weight_file_links_to_base",
]
# files the agent could write as well, written into the workspace from the host
FILES = [
    "swap_weights_after_dev_score", "swap_weights_after_base_copy_flag",
    "hash_cache_same_size_and_mtime", "sparse_safetensors_declaring_huge_tensor",
    "short_safetensors_declaring_huge_tensor", "safetensors_header_bomb", "pickle_weights_run_code",
    "config_declares_3000_layers", "config_declares_missing_layers",
]


def _holds(name: str, sandbox: str, tmp_path) -> None:
    report = run_attacks(MICRO_ID, sandbox, scratch=tmp_path, names=[name])
    (outcome,) = report.outcomes
    assert outcome.status == "held", f"{name} on {sandbox}: {outcome.status}: {outcome.detail}"


@pytest.mark.parametrize("name", IN_SANDBOX + FILES)
def test_attack_holds_on_local(name, micro_assets, tmp_path):
    _holds(name, "local", tmp_path)


@pytest.mark.parametrize("name", IN_SANDBOX)
def test_attack_holds_on_docker(name, micro_assets, need_docker, tmp_path):
    _holds(name, "docker", tmp_path)


def test_refusals_are_integrity_events(micro_assets, tmp_path):
    """The code/ link and a link submission leave workspace.link_refused events; a sparse
    weight file a submission.refused event."""
    run_attacks(MICRO_ID, "local", scratch=tmp_path,
                names=["code_dir_links_to_grader_cache", "submission_links_to_base_model",
                       "sparse_safetensors_declaring_huge_tensor"])
    kinds = {}
    for results in tmp_path.glob("*/results/*"):
        kinds[results.parts[-3]] = {(e.kind, e.source) for e in read_events(results)}
    assert ("workspace.link_refused", "code_history") in kinds["code_dir_links_to_grader_cache"]
    assert ("workspace.link_refused", "submission") in kinds["submission_links_to_base_model"]
    assert ("submission.refused", "submission") in kinds["sparse_safetensors_declaring_huge_tensor"]
