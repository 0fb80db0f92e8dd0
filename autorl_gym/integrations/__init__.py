"""Adapters for the RL trainers of the field: the episode as they expect to see it.

``integrations.trl``: a TRL ``environment_factory`` class whose public methods are the six
tools, and a dataset of scenario prompts for ``GRPOTrainer``.
"""
