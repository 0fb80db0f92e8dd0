"""Observation and action spaces: text.

Observations are any Basic-Multilingual-Plane text up to ``OBS_MAX_CHARS``; characters outside
the BMP become U+FFFD and an over-long observation keeps its head and tail. Actions are JSON
text in the declared space, though ``step()`` also takes dicts and pydantic tool calls.

The observation space is a :class:`ObservationText`, a ``Text`` space with its own shared-memory
layout, so that ``gym.make_vec(..., vectorization_mode="async")`` works with its default
``shared_memory=True``: Gymnasium's own layout for ``Text`` decodes the buffer once, when the
vector env is built, and so hands back empty strings on every later step. Ours stores each
sub-env's observation as its length and its code points, and reads them back when asked.
"""

from __future__ import annotations

import multiprocessing as mp
import string
from collections.abc import Iterator, Sequence
from ctypes import c_int32
from multiprocessing.sharedctypes import SynchronizedArray
from types import ModuleType
from typing import Any, overload

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

from autorl_gym.episode.texts import OBS_MAX_CHARS

ACTION_MAX_CHARS = 100_000
_BMP = frozenset(chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF)
_ACTION_CHARSET = frozenset(string.printable)


class ObservationText(spaces.Text):
    """The observation space: BMP text, with a shared-memory layout that async vector envs read
    correctly (see the module's docstring)."""


def observation_space() -> ObservationText:
    return ObservationText(max_length=OBS_MAX_CHARS, min_length=1, charset=_BMP)


def action_space() -> spaces.Text:
    return spaces.Text(max_length=ACTION_MAX_CHARS, min_length=1, charset=_ACTION_CHARSET)


# ---------------------------------------------------------------- async vector envs' buffers
# One row per sub-env: [length, code point, code point, ...] as int32 (UTF-32 of BMP text).

class SharedTexts(Sequence[str]):
    """The sub-envs' current observations, read from the shared buffer when indexed; a deep copy
    (what ``AsyncVectorEnv`` returns by default) is a plain tuple of strings."""

    def __init__(self, buffer: SynchronizedArray[c_int32], n: int, max_length: int):
        self._buffer, self._n, self._width = buffer, n, max_length + 1

    def _rows(self) -> np.ndarray:
        data = np.frombuffer(self._buffer.get_obj(), dtype=np.int32)  # type: ignore[call-overload]
        return data.reshape((self._n, self._width))

    def _text(self, row: np.ndarray) -> str:
        return row[1:1 + int(row[0])].tobytes().decode("utf-32-le")

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[str, ...]: ...
    def __getitem__(self, index: int | slice) -> str | tuple[str, ...]:
        rows = self._rows()
        if isinstance(index, slice):
            return tuple(self._text(r) for r in rows[index])
        return self._text(rows[index])

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[str]:
        return iter(self[:])

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return self[:]

    def __repr__(self) -> str:
        return f"SharedTexts({self[:]!r})"


@create_shared_memory.register(ObservationText)
def _create(space: ObservationText, n: int = 1, ctx: ModuleType = mp) -> SynchronizedArray[c_int32]:
    return ctx.Array(np.dtype(np.int32).char, n * (space.max_length + 1))  # type: ignore[attr-defined]


@read_from_shared_memory.register(ObservationText)
def _read(space: ObservationText, shared_memory: SynchronizedArray[c_int32], n: int = 1) -> SharedTexts:
    return SharedTexts(shared_memory, n, space.max_length)


@write_to_shared_memory.register(ObservationText)
def _write(space: ObservationText, index: int, values: str,
           shared_memory: SynchronizedArray[c_int32]) -> None:
    if not space.contains(values):
        raise ValueError(f"observation not in the observation space ({len(values)} chars)")
    points = np.frombuffer(values.encode("utf-32-le"), dtype=np.int32)
    width = space.max_length + 1
    row = np.frombuffer(shared_memory.get_obj(), dtype=np.int32)[index * width:(index + 1) * width]  # type: ignore[call-overload]
    row[0] = len(points)
    row[1:1 + len(points)] = points
