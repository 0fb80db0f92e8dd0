"""What the grading forkserver imports once, so that each grading child it forks has it already
(:mod:`autorl_gym.grading.forkserver`): torch, transformers' model and tokenizer classes, and the
grading core with its registries. Importing runs no torch operation and starts no thread."""

import torch  # noqa: F401
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

import autorl_gym.core.family  # noqa: F401
import autorl_gym.grading.backends.hf  # noqa: F401
import autorl_gym.grading.backends.registry  # noqa: F401
import autorl_gym.grading.grader  # noqa: F401
import autorl_gym.grading.worker  # noqa: F401
