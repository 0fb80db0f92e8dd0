"""Observation and action spaces: text.

Observations are any Basic-Multilingual-Plane text up to ``OBS_MAX_CHARS``; characters outside
the BMP become U+FFFD and an over-long observation keeps its head and tail. Actions are JSON
text in the declared space, though ``step()`` also takes dicts and pydantic tool calls.
"""

from __future__ import annotations

import string

from gymnasium import spaces

from autorl_gym.episode.texts import OBS_MAX_CHARS

ACTION_MAX_CHARS = 100_000
_BMP = frozenset(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF)
_ACTION_CHARSET = frozenset(string.printable)


def observation_space() -> spaces.Text:
    return spaces.Text(max_length=OBS_MAX_CHARS, min_length=1, charset=_BMP)


def action_space() -> spaces.Text:
    return spaces.Text(max_length=ACTION_MAX_CHARS, min_length=1, charset=_ACTION_CHARSET)
