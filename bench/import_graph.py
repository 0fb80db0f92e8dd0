"""The package's import structure, measured with grimp (the graph library under import-linter).

A *room* is a top-level sub-package of ``autorl_gym`` or a loose module at its root. An *arrow* is
a pair of rooms where a module of the first imports a module of the second (counted once per pair);
*floors* are the longest chain of arrows in the room graph once its cycles are contracted; a
*cycle* is a strongly connected set of two or more modules; an *upward* import is a module import
that runs against the room order of the layers contract in ``pyproject.toml`` (rooms the contract
does not name are left out of that count). Every import counts, those made for type hints only
(under ``if TYPE_CHECKING:``) and those inside functions too. ``--json`` prints the same figures
as one object.

    python bench/import_graph.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

import grimp
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
PKG = "autorl_gym"


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def strongly_connected(nodes: set[str], edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative; the components of two or more nodes."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[set[str]] = []
    counter = 0
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.add(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    found.append(comp)
    return found


def contract_layers() -> list[list[str]]:
    """The rooms of the layers contract, top first (siblings on one layer share a list)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = config.get("tool", {}).get("importlinter", {}).get("contracts", [])
    for contract in contracts:
        if contract.get("type") == "layers":
            return [[r.strip().split(".")[-1] for r in layer.replace(":", "|").split("|")]
                    for layer in contract["layers"]]
    return []


def measure() -> dict:
    graph = grimp.build_graph(PKG, cache_dir=None)
    modules = {m for m in graph.modules if m.startswith(PKG)}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    n_imports = 0
    for m in modules:
        for target in graph.find_modules_directly_imported_by(m):
            if target in modules and target != m:
                edges[m].add(target)
                n_imports += 1
    rooms = {room(m) for m in modules} - {"__init__"}
    loose = sorted(r for r in rooms if f"{PKG}.{r}" in modules and not graph.find_children(f"{PKG}.{r}"))
    room_edges: dict[str, set[str]] = {r: set() for r in rooms | {"__init__"}}
    for m, targets in edges.items():
        for t in targets:
            if room(m) != room(t):
                room_edges[room(m)].add(room(t))
    room_edges.pop("__init__", None)
    for targets in room_edges.values():
        targets.discard("__init__")
    arrows = sum(len(t) for t in room_edges.values())
    module_cycles = strongly_connected(modules, edges)
    room_cycles = strongly_connected(rooms, room_edges)

    # floors: longest path in the condensation of the room graph
    comp_of = {r: r for r in rooms}
    for comp in room_cycles:
        name = "+".join(sorted(comp))
        for r in comp:
            comp_of[r] = name
    cedges: dict[str, set[str]] = {}
    for a, targets in room_edges.items():
        for b in targets:
            if comp_of[a] != comp_of[b]:
                cedges.setdefault(comp_of[a], set()).add(comp_of[b])
    depth: dict[str, int] = {}

    def floor(c: str) -> int:
        if c not in depth:
            depth[c] = 1 + max((floor(d) for d in cedges.get(c, ())), default=0)
        return depth[c]

    floors = max((floor(c) for c in set(comp_of.values())), default=0)

    layers = contract_layers()
    rank = {r: i for i, layer in enumerate(layers) for r in layer}
    upward = sorted(
        f"{m} -> {t}" for m, targets in edges.items() for t in targets
        if room(m) in rank and room(t) in rank and rank[room(t)] < rank[room(m)]
    )
    return {
        "modules": len(modules),
        "imports": n_imports,
        "rooms": len(rooms),
        "loose_root_modules": loose,
        "floors": floors,
        "arrows": arrows,
        "module_cycles": [sorted(c) for c in module_cycles],
        "room_cycles": [sorted(c) for c in room_cycles],
        "upward_imports": upward,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    figures = measure()
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = Table(title=f"import structure of {PKG} (grimp)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key in ("modules", "imports", "rooms", "floors", "arrows"):
        table.add_row(key, str(figures[key]))
    table.add_row("loose root modules", str(len(figures["loose_root_modules"])))
    table.add_row("module cycles", str(len(figures["module_cycles"])))
    table.add_row("room cycles", str(len(figures["room_cycles"])))
    table.add_row("upward imports (layers contract)", str(len(figures["upward_imports"])))
    Console().print(table)
    for cycle in figures["module_cycles"]:
        print("cycle:", ", ".join(cycle))
    for line in figures["upward_imports"]:
        print("upward:", line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
