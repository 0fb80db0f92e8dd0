"""What the grading forkserver imports once, so that each grading child it forks has it already
(:mod:`autorl_gym.grading.forkserver`): torch, transformers' model and tokenizer classes, and the
grading core with its registries. Importing runs no torch operation and starts no thread."""

import torch  # noqa: F401
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: F401

import autorl_gym.grading.backends  # noqa: F401
import autorl_gym.grading.core  # noqa: F401
import autorl_gym.grading.hf_backend  # noqa: F401
import autorl_gym.grading.worker  # noqa: F401
import autorl_gym.tasks.registry  # noqa: F401
