"""The attack suite: known attacks on the benchmark's integrity, run against a real episode.

Each attack is a function registered with :func:`autorl_gym.attacks.base.attack` in a module of
:mod:`autorl_gym.attacks.cases`; ``autorl-gym attacks run`` runs every one that applies to a
scenario and a sandbox kind and prints held/broken per attack. An attack that breaks fails CI.
"""
