"""Sweeps: a grid of episodes (scenarios × agents × driver models × budgets × seeds) run as Ray
tasks, resumable, aggregated by the leaderboard. ``autorl-gym sweep SWEEP.yaml``, or::

    from autorl_gym.sweep import load_sweep, run_sweep
    summary = run_sweep(load_sweep("SWEEP.yaml"))

Ray is needed to run one (``pip install 'autorl-gym[sweep]'``), not to read or expand one."""

from autorl_gym.sweep.cells import Cell, CellRecord, SweepLayout, expand
from autorl_gym.sweep.runner import SweepSummary, cell_records, run_sweep
from autorl_gym.sweep.spec import AgentEntry, SweepError, SweepSpec, load_sweep, parse_sweep

__all__ = ["AgentEntry", "Cell", "CellRecord", "SweepError", "SweepLayout", "SweepSpec",
           "SweepSummary", "cell_records", "expand", "load_sweep", "parse_sweep", "run_sweep"]
