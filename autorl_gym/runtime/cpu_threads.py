"""How the processes we start that run torch on the CPU wait between parallel regions.

torch's CPU build runs its parallel ops on GNU OpenMP, whose worker threads spin for a while at
every barrier before they sleep. When the cores are shared (a second training, the grading
server importing torch, another episode, the test suite), a spinning thread takes the core the
thread it waits for needs, and each small op then waits for a scheduler slice: on this project's
2-core machine, a micro-model training step with two torch threads went from about 0.1 s alone to
1.6 s beside the running test suite, and a batched greedy ``generate`` of 200 prompts there took
5-7 s with two threads against 0.7 s with one. With ``OMP_WAIT_POLICY=PASSIVE`` the threads
sleep at once and the same two-thread runs took 0.3 s per step and 0.6 s (docs: measured.md,
"Spinning OpenMP threads").

:func:`cpu_thread_env` is the one place that default is set: every sandboxed command's
environment (:func:`autorl_gym.runtime.process.command_env`) and every grading process's have it,
unless the environment already names a policy. The policy changes how threads wait, never what
they compute, so no completion or score changes with it. OpenMP reads it once, when the library
loads: it must be in a process's environment before that process imports torch.
"""

from __future__ import annotations

from collections.abc import Mapping

#: set in the environment of each process we start that may run torch, unless already set there
CPU_THREAD_DEFAULTS: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def cpu_thread_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with :data:`CPU_THREAD_DEFAULTS` added where it names none of them."""
    return {**CPU_THREAD_DEFAULTS, **env}
