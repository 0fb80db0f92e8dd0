"""lm-eval's ``humaneval`` task, pinned to local data files, for the ``lm_eval`` backend.

The config is lm-eval 0.4's ``lm_eval/tasks/humaneval/humaneval.yaml`` with two changes:

* ``dataset_path: json`` on the grader's own items (``eval.jsonl`` in the run folder) instead of
  the hub's ``openai/openai_humaneval``;
* no ``utils.pass_at_k`` metric and no ``unsafe_code``: the stock metric loads HF ``evaluate``'s
  ``code_eval``, which needs ``HF_ALLOW_CODE_EVAL=1`` and runs the model's code in the grader's
  own process. lm-eval generates here (its prompt, its ``generate_until`` loop, its stop
  sequences and ``max_gen_toks``); its responses, ``prompt + response`` exactly as the stock
  ``build_predictions`` filter builds them, are scored by this package's sandboxed executor.
  lm-eval's own metric in the results is ``exact_match`` against the canonical solution, kept
  for reference only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TASK_NAME = "autorl_humaneval"
#: The Codex paper's stop sequences (Chen et al. 2021, section 3.3), as lm-eval's humaneval.yaml.
STOP_SEQUENCES: tuple[str, ...] = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
MAX_GEN_TOKS = 1024  # lm-eval's humaneval.yaml


def task_config(eval_file: Path, task_name: str = TASK_NAME, stop: tuple[str, ...] | list[str] =
                STOP_SEQUENCES, max_gen_toks: int = MAX_GEN_TOKS) -> dict[str, Any]:
    """The lm-eval task config for the problems in ``eval_file`` (HumanEval's fields, one object
    per line)."""
    return {
        "task": task_name,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"eval": str(eval_file)}},
        "output_type": "generate_until",
        "test_split": "eval",
        "doc_to_text": "{{prompt}}",
        "doc_to_target": "{{canonical_solution}}",
        "target_delimiter": "",
        "generation_kwargs": {"until": list(stop), "max_gen_toks": max_gen_toks,
                              "do_sample": False},
        "repeats": 1,
        "num_fewshot": 0,
        "metric_list": [{"metric": "exact_match", "aggregation": "mean",
                         "higher_is_better": True}],
        "metadata": {"version": 1.0, "based_on": "lm_eval/tasks/humaneval/humaneval.yaml",
                     "scored_by": "autorl_gym.tasks.humaneval.executor (sandboxed)"},
    }

