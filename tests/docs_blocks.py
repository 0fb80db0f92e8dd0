"""The code blocks of the documentation (docs/**/*.md and README.md), as tests/test_docs.py runs
them. A fenced block whose language is code (:data:`CODE_LANGS`) is run as written unless the
line before it (skipping blank lines and snippet markers) is a marker comment:

* ``<!-- not run: REASON -->`` (or ``<!-- not run by the docs tests: REASON -->``): never run;
  the reason says why (it needs a GPU, an API key, a placeholder path, serves forever, ...);
* ``<!-- slow: REASON -->``: run, under the ``slow`` mark (a whole episode);
* ``<!-- file: NAME -->`` before a block in any language: the block is a file that the page's
  later blocks use; it is written as NAME into their folder before they run.

Every other code block is run: Python as a script file (``python block.py``, as a user runs
it), shell with ``bash -e``, each in a fresh folder. Blocks in other languages (text, yaml,
json, ...) are not code and are never run.

``python tests/docs_blocks.py`` prints how many blocks run and how many are marked not run.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE_LANGS = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash",
              "console": "bash", "pycon": "python"}
FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
MARKER = re.compile(r"^<!--\s*(?P<kind>not run|slow)(?: by the docs tests)?\s*:\s*(?P<reason>.+?)\s*-->$")
SNIPPET_MARKER = re.compile(r"^<!--\s*--8<--.*-->$")
FILE_MARKER = re.compile(r"^<!--\s*file:\s*(?P<name>[\w.-]+)\s*-->$")


@dataclass(frozen=True)
class Block:
    file: Path
    line: int         # 1-based line of the opening fence
    lang: str         # "python" or "bash"
    code: str
    run: bool
    slow: bool
    reason: str       # why not run (or why slow)
    files: tuple[tuple[str, str], ...] = ()  # (name, content) of the page's file blocks before it

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}"


class MarkupError(ValueError):
    """A malformed marker or an unclosed fence."""


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _line_before(lines: list[str], index: int) -> str:
    j = index - 1
    while j >= 0 and (not lines[j].strip() or SNIPPET_MARKER.match(lines[j].strip())):
        j -= 1
    return lines[j].strip() if j >= 0 else ""


def _marker_before(lines: list[str], index: int) -> re.Match[str] | None:
    text = _line_before(lines, index)
    match = MARKER.match(text)
    if match is None and text.startswith("<!--") and re.match(r"<!--\s*(not run|slow)", text):
        raise MarkupError(f"malformed marker {text!r}: write <!-- not run: REASON --> or "
                          "<!-- slow: REASON -->")
    return match


def blocks_of(file: Path) -> list[Block]:
    lines = file.read_text().splitlines()
    out: list[Block] = []
    files: dict[str, str] = {}
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        fence, info = opening["fence"], opening["info"].strip()
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j].strip().startswith(fence) and not lines[j].strip().strip(fence[0])),
                   None)
        if end is None:
            raise MarkupError(f"{file}:{i + 1}: fence {fence} is never closed")
        lang = info.split()[0].lower() if info else ""
        indent = len(opening["indent"])
        code = "\n".join(line[indent:] for line in lines[i + 1:end]) + "\n"
        as_file = FILE_MARKER.match(_line_before(lines, i))
        if as_file:
            files[as_file["name"]] = code
        elif lang in CODE_LANGS:
            marker = _marker_before(lines, i)
            out.append(Block(file=file, line=i + 1, lang=CODE_LANGS[lang], code=code,
                             run=not (marker and marker["kind"] == "not run"),
                             slow=bool(marker and marker["kind"] == "slow"),
                             reason=marker["reason"] if marker else "", files=tuple(files.items())))
        i = end + 1
    return out


def all_blocks() -> list[Block]:
    return [block for file in doc_files() for block in blocks_of(file)]


def readme_commands() -> list[str]:
    """The README's three commands (its first bash block, comments dropped), in order."""
    block = next(b for b in blocks_of(ROOT / "README.md") if b.lang == "bash")
    return [line for line in block.code.splitlines() if line.strip() and not line.startswith("#")]


if __name__ == "__main__":
    blocks = all_blocks()
    run = [b for b in blocks if b.run]
    print(f"{len(blocks)} code blocks in {len(doc_files())} files: {len(run)} run by the tests "
          f"({sum(b.slow for b in run)} of them slow), {len(blocks) - len(run)} marked not run")
    if "-v" in sys.argv:
        for b in blocks:
            state = "slow" if b.slow else "run" if b.run else "not run"
            print(f"  {b.id:45} {b.lang:6} {state:8} {b.reason}")

