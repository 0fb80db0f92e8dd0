"""Observation and action spaces: text.

Observations are any Basic-Multilingual-Plane text up to ``OBS_MAX_CHARS``; characters outside
the BMP become U+FFFD and an over-long observation keeps its head and tail. Actions are JSON
text in the declared space, though ``step()`` also takes dicts and pydantic tool calls.
"""

from __future__ import annotations

import string

from gymnasium import spaces

OBS_MAX_CHARS = 200_000
ACTION_MAX_CHARS = 100_000
_BMP = frozenset(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF)
_ACTION_CHARSET = frozenset(string.printable)


def observation_space() -> spaces.Text:
    return spaces.Text(max_length=OBS_MAX_CHARS, min_length=1, charset=_BMP)


def action_space() -> spaces.Text:
    return spaces.Text(max_length=ACTION_MAX_CHARS, min_length=1, charset=_ACTION_CHARSET)


def to_observation(text: str) -> str:
    """Fit text into the observation space."""
    if not text:
        text = "(empty)"
    if any(ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF for c in text):
        text = "".join(
            "\ufffd" if ord(c) > 0xFFFF or 0xD800 <= ord(c) <= 0xDFFF else c for c in text
        )
    if len(text) > OBS_MAX_CHARS:
        marker = f"\n[... {len(text) - OBS_MAX_CHARS + 200:,} characters omitted ...]\n"
        keep = (OBS_MAX_CHARS - len(marker)) // 2
        text = text[:keep] + marker + text[-keep:]
    return text
