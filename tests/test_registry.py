"""The one registry mechanism (``autorl_gym.core.registry.Registry``): names checked once,
duplicates refused, built-ins and entry points loaded lazily and once, one wording for an
unknown name; and every registry of the package is one."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from autorl_gym.core.registry import Registry, UnknownName


def test_names_are_checked_and_a_taken_name_is_refused() -> None:
    reg: Registry[int] = Registry("widget")
    reg.add("alpha", 1, owner="pkg.Alpha")
    reg.add("alpha", 1, owner="pkg.Alpha")  # the same module imported twice: fine
    with pytest.raises(ValueError, match="widget 'alpha' is already registered by pkg.Alpha"):
        reg.add("alpha", 2, owner="other.Alpha")
    for bad in ("Alpha", "1st", "", "a" * 40, "with space", None):
        with pytest.raises(ValueError, match="widget"):
            reg.add(bad, 3, owner="x")  # type: ignore[arg-type]
    assert reg.get("alpha") == 1 and "alpha" in reg and "beta" not in reg


def test_an_unknown_name_is_worded_once_and_lists_the_registered() -> None:
    class NoSuchWidget(ValueError):
        pass

    reg: Registry[int] = Registry("widget", unknown=NoSuchWidget)
    reg.add("b", 1, owner="x")
    reg.add("a", 2, owner="y")
    with pytest.raises(NoSuchWidget, match=r"^unknown widget 'zz'; registered: b, a$"):
        reg.get("zz")
    assert isinstance(NoSuchWidget(), ValueError) and UnknownName.__mro__[1] is ValueError


@pytest.fixture()
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder on sys.path holding a package of built-ins and an installed distribution with
    entry points (a real ``*.dist-info``, as pip writes one)."""
    pkg = tmp_path / "regtest_builtins"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "alpha.py").write_text(textwrap.dedent("""
        from regtest_state import REG
        REG.add("alpha", "the alpha widget", owner=__name__)
    """))
    (pkg / "helper.py").write_text("IMPORTED = True\n")
    (tmp_path / "regtest_plugin.py").write_text(textwrap.dedent("""
        LOADS = []
        def make():
            LOADS.append(1)
            return "the plugin widget"
    """))
    (tmp_path / "regtest_broken.py").write_text("raise RuntimeError('broken on import')\n")
    dist = tmp_path / "regtest_dist-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: regtest-dist\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[regtest.widgets]\nplugged = regtest_plugin:make\nbroken = regtest_broken:thing\n")
    # (not monkeypatch.syspath_prepend: it touches pkg_resources, which another test may have
    # left half-imported)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    importlib.invalidate_caches()
    for mod in ("regtest_builtins", "regtest_builtins.alpha", "regtest_builtins.helper",
                "regtest_plugin", "regtest_broken", "regtest_state"):
        monkeypatch.delitem(sys.modules, mod, raising=False)
    return tmp_path


def test_builtins_and_entry_points_load_lazily_and_once(plugin_path: Path) -> None:
    (plugin_path / "regtest_state.py").write_text(textwrap.dedent("""
        from autorl_gym.core.registry import Registry
        def on_ep(name, obj):
            REG.add(name, obj(), owner="entry point " + name)
        REG = Registry("widget", builtin_package="regtest_builtins", entry_point_group="regtest.widgets",
                       on_entry_point=on_ep)
    """))
    import regtest_state

    reg = regtest_state.REG
    assert "regtest_builtins.alpha" not in sys.modules  # nothing imported until a lookup
    assert reg.get("alpha") == "the alpha widget"
    assert "regtest_builtins.helper" not in sys.modules  # only the module named was imported
    with pytest.warns(RuntimeWarning, match="widget entry point 'broken'.*broken on import"):
        assert reg.get("plugged") == "the plugin widget"
    assert reg.names() == ["alpha", "plugged"]
    import regtest_plugin

    assert regtest_plugin.LOADS == [1]  # the entry points were loaded once
    with pytest.raises(UnknownName, match="registered: alpha, plugged"):
        reg.get("gamma")
    assert regtest_plugin.LOADS == [1]


def test_every_registry_of_the_package_is_one() -> None:
    """Task families, sandbox kinds, grader and judge backends, model sources, engines and
    search backends are all the one mechanism, each with its own name in its messages."""
    from autorl_gym.core.assets import MODEL_SOURCES
    from autorl_gym.core.family import FAMILIES, UnknownTaskFamily
    from autorl_gym.grading.backends.registry import BACKENDS
    from autorl_gym.interactive.engines import ENGINES
    from autorl_gym.interactive.search import SEARCH_BACKENDS, SearchError
    from autorl_gym.judge.backends import JUDGE_BACKENDS
    from autorl_gym.sandbox.registry import SANDBOXES, UnknownSandboxKind

    cases = [(FAMILIES, UnknownTaskFamily, "task family", "arith"),
             (SANDBOXES, UnknownSandboxKind, "sandbox kind", "local"),
             (BACKENDS, UnknownName, "grader backend", "hf"),
             (JUDGE_BACKENDS, UnknownName, "judge backend", "openai"),
             (MODEL_SOURCES, UnknownName, "model source", "micro"),
             (ENGINES, UnknownName, "game engine", "textworld"),
             (SEARCH_BACKENDS, SearchError, "search backend", "bm25")]
    for reg, error, kind, known in cases:
        assert isinstance(reg, Registry)
        assert reg.get(known) is not None
        with pytest.raises(error, match=rf"^unknown {kind} 'no-such'; registered: .*{known}"):
            reg.get("no-such")
