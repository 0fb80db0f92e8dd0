"""The attack cases, one module per class of attack (each task family and sandbox backend may add
its own). Every module here is imported by :func:`autorl_gym.attacks.base.load_cases`."""
