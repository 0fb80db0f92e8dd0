"""Plausible wrong completions of HumanEval problems: answers a weak model writes (empty bodies,
``return 0``, another problem's solution, the canonical solution with its results wrapped in
another type, classic mutants of it). Shared by ``tests/test_code_grader.py`` (verdicts item for
item against ``tests/data/humaneval_wrong_verdicts.json``) and ``bench/humaneval_escapes.py``."""

from __future__ import annotations

import ast


class _WrapReturns(ast.NodeTransformer):
    """``return X`` -> ``return WRAP(X)`` in the entry function only (not nested functions)."""

    def __init__(self, wrap: str):
        self.wrap, self.depth = wrap, 0

    def visit_FunctionDef(self, node):  # noqa: N802
        self.depth += 1
        if self.depth == 1:
            self.generic_visit(node)
        self.depth -= 1
        return node

    visit_Lambda = visit_FunctionDef  # noqa: N815

    def visit_Return(self, node):  # noqa: N802
        if node.value is not None:
            node.value = ast.Call(func=ast.Name(self.wrap, ast.Load()), args=[node.value],
                                  keywords=[])
        return node


class _Mutate(ast.NodeTransformer):
    """The first occurrence of one operator or constant changed (a classic mutant)."""

    def __init__(self, kind: str):
        self.kind, self.done = kind, False

    def visit_BinOp(self, node):  # noqa: N802
        self.generic_visit(node)
        if self.kind == "arith" and not self.done and isinstance(node.op, (ast.Add, ast.Sub)):
            node.op = ast.Sub() if isinstance(node.op, ast.Add) else ast.Add()
            self.done = True
        return node

    def visit_Compare(self, node):  # noqa: N802
        self.generic_visit(node)
        swap = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}
        if self.kind == "compare" and not self.done and type(node.ops[0]) in swap:
            node.ops[0] = swap[type(node.ops[0])]()
            self.done = True
        return node

    def visit_Constant(self, node):  # noqa: N802
        if (self.kind == "const" and not self.done and type(node.value) is int
                and node.value in (0, 1, 2)):
            self.done = True
            return ast.Constant(node.value + 1)
        return node


def _entry_body(p: dict, transform: ast.NodeTransformer) -> str | None:
    try:
        tree = ast.parse(p["prompt"] + p["canonical_solution"])
    except SyntaxError:
        return None
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef)
               and n.name == p["entry_point"]), None)
    if fn is None:
        return None
    body = fn.body[1:] if (fn.body and isinstance(fn.body[0], ast.Expr)
                           and isinstance(fn.body[0].value, ast.Constant)) else fn.body
    mod = ast.Module(body=[transform.visit(s) for s in body], type_ignores=[])
    if isinstance(transform, _Mutate) and not transform.done:
        return None
    return "".join("    " + line + "\n" for line in ast.unparse(mod).splitlines())


def wrong_completions(problems: list[dict]) -> list[tuple[str, int, str]]:
    """(kind, problem index, completion): answers a weak model writes, right and wrong."""
    out: list[tuple[str, int, str]] = []
    for i, p in enumerate(problems):
        out.append(("pass", i, "    pass\n"))
        out.append(("return_0", i, "    return 0\n"))
        out.append(("other_solution", i, problems[(i + 1) % len(problems)]["canonical_solution"]))
        for wrap in ("tuple", "set", "iter", "str"):
            body = _entry_body(p, _WrapReturns(wrap))
            if body:
                out.append((f"wrap_{wrap}", i, body))
        for kind in ("arith", "compare", "const"):
            body = _entry_body(p, _Mutate(kind))
            if body:
                out.append((f"mutant_{kind}", i, body))
        out.append(("raises", i, "    raise ValueError('not implemented')\n"))
    return out
