"""Model outputs go into a judge prompt as data: chat-template markers and the prompt's own
delimiters are neutralised first, so no output can open a turn or a section of the prompt.

A judge served behind an OpenAI-compatible endpoint renders its messages through its chat
template, and the server's tokenizer turns a marker such as ``<|im_start|>`` found in any
message's text into the special token itself: text that carries ``<|im_start|>system`` opens a
system turn. :func:`neutralise` removes the markers of the common templates (ChatML, Llama 2 and
3, Gemma, Phi and other ``<|...|>`` special tokens, DeepSeek's, ``<s>``/``</s>``, Anthropic's
``\\n\\nHuman:``/``\\n\\nAssistant:``) and defuses the delimiters a prompt declares
(:attr:`autorl_gym.judge.prompts.JudgePrompt.delimiters`: a ``\"\"\"`` quote becomes ``'''``, a
section header line such as ``## Task`` loses its hashes). It runs to a fixed point (removing one
marker cannot leave another behind) and leaves text without markers unchanged, byte for byte, so a
clean output is judged exactly as before. An output that needed it is judged as its neutralised
text, and the judge records an integrity event (``judge.markers``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import BaseModel

QUOTE = '"""'
# (name, pattern): every match is removed
CHAT_MARKERS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("special token <|...|> (ChatML, Llama 3, Phi, ...)", re.compile(r"<\|[^<>|\s]{1,40}\|>")),
    ("DeepSeek token", re.compile(r"<｜[^<>｜\n]{1,40}｜>")),
    ("Llama 2 [INST]/<<SYS>>", re.compile(r"\[/?INST\]|<</?SYS>>")),
    ("Gemma turn", re.compile(r"<(?:start|end)_of_turn>")),
    ("<s>/</s>", re.compile(r"</?s>")),
    ("Anthropic \\n\\nHuman:/\\n\\nAssistant:", re.compile(r"(?<=\n\n)(?:Human|Assistant):")),
)
_MAX_PASSES = 64


class Neutralised(BaseModel):
    """A text as it goes into a judge prompt, and the markers taken out of it."""

    text: str
    markers: list[str]   # each distinct marker found, as written (at most 20, 40 chars each)

    @property
    def changed(self) -> bool:
        return bool(self.markers)


def _header_pattern(titles: Iterable[str]) -> re.Pattern[str] | None:
    titles = sorted({t.strip() for t in titles if t.strip()}, key=len, reverse=True)
    if not titles:
        return None
    alts = "|".join(re.escape(t) for t in titles)
    return re.compile(rf"(?im)^([ \t]*)#{{1,6}}[ \t]*({alts})[ \t]*:?[ \t]*$")


def neutralise(text: str, delimiters: Iterable[str] = ()) -> Neutralised:
    """``text`` without chat-template markers, and with ``delimiters`` defused: ``\"\"\"`` (any
    run of three or more double quotes becomes as many single quotes) and section headers given
    as ``## Title`` (a line holding that header, any level of hashes, any case, loses its hashes)."""
    delims = list(delimiters)
    headers = _header_pattern(d.lstrip("#") for d in delims if d.startswith("#"))
    quote = QUOTE in delims
    found: dict[str, None] = {}

    def keep(m: re.Match[str]) -> str:
        if len(found) < 20:
            found.setdefault(m.group(0)[:40], None)
        return ""

    for _ in range(_MAX_PASSES):
        before = text
        for _, pattern in CHAT_MARKERS:
            text = pattern.sub(keep, text)
        if quote:
            text = re.sub(r'"{3,}', lambda m: (keep(m), "'" * len(m.group(0)))[1], text)
        if headers is not None:
            text = headers.sub(lambda m: (keep(m), m.group(1) + m.group(2))[1], text)
        if text == before:
            break
    return Neutralised(text=text, markers=list(found))
