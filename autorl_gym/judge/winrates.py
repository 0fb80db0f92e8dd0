"""Win rates from pairwise preferences, computed by the ``alpaca-eval`` package's own code.

* the raw win rate: ``alpaca_eval.metrics.winrate.get_winrate`` (a tie counts a half);
* the length-controlled win rate: ``alpaca_eval.metrics.glm_winrate.get_length_controlled_winrate``,
  AlpacaEval 2.0's GLM (a logistic regression of the preference on the standardised length
  difference, fitted with 5-fold cross-validation, then predicted at zero length difference).

That function fetches one table from the hub, ``df_gamed.csv`` (per-instruction difficulty of the
805 AlpacaEval prompts and the annotations of two length-gamed models that its default GLM,
``length_controlled_v1``, is regularised towards). It is handed a local copy instead:

* with the hub's ``df_gamed.csv`` (AlpacaEval's own prompts, indexed as in the original set):
  ``length_controlled_v1``, AlpacaEval 2.0's published method, unchanged;
* without it (prompts not from AlpacaEval, or no copy on this host): ``length_controlled_minimal``,
  the package's GLM without the difficulty term and without the regularisation, the only terms
  the table feeds. The function still reads an ``instruction_difficulty`` column, which that
  formula does not use; it gets a table of zeros for it.

Preferences are the model output's share in [0, 1] (1: the output won both orders); AlpacaEval's
encoding is ``1 + share`` (1: the reference, output_1, wins; 2: the model, output_2, wins).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import tempfile
import types
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

from pydantic import BaseModel

LC_V1 = "length_controlled_v1"
LC_MINIMAL = "length_controlled_minimal"
MIN_LC_ITEMS = 5  # the GLM is fitted with 5-fold cross-validation


class Annotation(BaseModel):
    index: int            # the instruction's index in its set (AlpacaEval: 0..804)
    output: str
    reference: str
    preference: float     # the output's share in [0, 1]


class WinRates(BaseModel):
    win_rate: float
    standard_error: float
    lc_win_rate: float
    lc_standard_error: float | None
    lc_method: str        # which GLM, or why the raw win rate stands in for it
    n: int
    wins: int             # the output preferred in both orders ... share > 0.5
    losses: int
    draws: int


def _shim_pkg_resources() -> None:
    """alpaca-eval 0.6.6 imports ``pkg_resources`` (gone from setuptools >= 81) for two version
    helpers; give it those two from ``packaging`` and ``importlib.metadata`` when it is missing."""
    try:
        import pkg_resources  # noqa: F401
        return
    except ImportError:
        pass
    from importlib.metadata import version

    from packaging.version import parse

    shim = types.ModuleType("pkg_resources")
    shim.parse_version = parse  # type: ignore[attr-defined]
    shim.get_distribution = lambda name: types.SimpleNamespace(version=version(name))  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = shim


def _alpaca_eval_metrics():
    _shim_pkg_resources()
    try:
        from alpaca_eval.metrics import glm_winrate, winrate
    except ImportError as e:
        raise RuntimeError(f"win rates are computed by the alpaca-eval package, which does not "
                           f"import ({e}): pip install alpaca-eval==0.6.6") from e
    return glm_winrate, winrate


def _frame(annotations: Sequence[Annotation]):
    import pandas as pd

    return pd.DataFrame({
        "index": [a.index for a in annotations],
        "output_1": [a.reference for a in annotations],
        "output_2": [a.output for a in annotations],
        "preference": [1.0 + a.preference for a in annotations],
        "generator_1": "reference", "generator_2": "model", "annotator": "judge",
    })


def _placeholder_gamed(indices: Sequence[int], folder: Path) -> Path:
    """A df_gamed.csv with only what ``length_controlled_minimal`` lets the function read: one
    row per instruction index, difficulty 0 (unused by that formula), no gamed annotations."""
    import pandas as pd

    n = max(indices) + 1 if indices else 1
    path = folder / "df_gamed.csv"
    pd.DataFrame({"index": range(n), "instruction_difficulty": 0.0, "model": "none"}).to_csv(
        path, index=False)
    return path


@contextlib.contextmanager
def _local_hub_file(glm_winrate, path: Path) -> Iterator[None]:
    """The function's hub download of ``df_gamed.csv`` answered by ``path``; nothing else."""
    real = glm_winrate.hf_hub_download

    def local(repo_id: str, filename: str, **kwargs):  # noqa: ANN202
        if filename != "df_gamed.csv":
            raise RuntimeError(f"offline: alpaca-eval asked the hub for {filename}")
        return str(path)

    glm_winrate.hf_hub_download = local
    try:
        yield
    finally:
        glm_winrate.hf_hub_download = real


def win_rates(annotations: Sequence[Annotation], gamed_csv: Path | None = None) -> WinRates:
    """Raw and length-controlled win rates in percent (``gamed_csv``: the hub's df_gamed.csv,
    only for AlpacaEval's own prompts)."""
    glm_winrate, winrate = _alpaca_eval_metrics()
    if not annotations:
        raise ValueError("no annotations to compute a win rate from")
    df = _frame(annotations)
    raw = winrate.get_winrate(df)
    prefs = [a.preference for a in annotations]
    counts = {"wins": sum(p > 0.5 for p in prefs), "losses": sum(p < 0.5 for p in prefs),
              "draws": sum(p == 0.5 for p in prefs)}
    glm = LC_V1 if gamed_csv is not None else LC_MINIMAL
    lc, lc_se, method = _length_controlled(glm_winrate, df, glm, gamed_csv, annotations)
    if lc is None:
        lc, lc_se = float(raw["win_rate"]), None
    return WinRates(win_rate=float(raw["win_rate"]), standard_error=_num(raw["standard_error"]),
                    lc_win_rate=lc, lc_standard_error=lc_se, lc_method=method, n=len(annotations),
                    **counts)


def _num(x: float) -> float:
    return 0.0 if x is None or math.isnan(float(x)) else float(x)


def _length_controlled(glm_winrate, df, glm: str, gamed_csv: Path | None,
                       annotations: Sequence[Annotation]) -> tuple[float | None, float | None, str]:
    lengths = {len(a.output) - len(a.reference) for a in annotations}
    if len(annotations) < MIN_LC_ITEMS:
        return None, None, f"raw win rate (fewer than {MIN_LC_ITEMS} items for the LC GLM)"
    if len(lengths) < 2:
        return None, None, "raw win rate (no length differences to control for)"
    if len({a.preference for a in annotations}) < 2:
        return None, None, "raw win rate (every preference equal: nothing for the LC GLM to fit)"
    with tempfile.TemporaryDirectory(prefix="autorl-lc-") as tmp:
        table = gamed_csv or _placeholder_gamed([a.index for a in annotations], Path(tmp))
        quiet = logging.getLogger()
        level = quiet.level
        try:
            with _local_hub_file(glm_winrate, table), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sklearn's deprecations inside alpaca-eval
                quiet.setLevel(logging.ERROR)
                m = glm_winrate.get_length_controlled_winrate(
                    df, glm_name=glm, save_weights_dir=None, is_warn_extreme_changes=False)
        except (ValueError, KeyError, IndexError) as e:
            return None, None, f"raw win rate (alpaca-eval's {glm} GLM failed: " \
                               f"{e.__class__.__name__}: {str(e)[:120]})"
        finally:
            quiet.setLevel(level)
    lc = float(m["length_controlled_winrate"])
    if math.isnan(lc):
        return None, None, f"raw win rate (alpaca-eval's {glm} GLM gave no number)"
    return lc, _num(m["lc_standard_error"]), f"alpaca-eval {glm}"
