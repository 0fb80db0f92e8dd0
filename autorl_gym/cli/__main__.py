"""``python -m autorl_gym.cli``: the ``autorl-gym`` command."""

from autorl_gym.cli.main import app

app()
