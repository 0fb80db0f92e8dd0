"""WebShop over its real product data and human instructions, in WebShop's own data layout::

    <root>/items_shuffle.json + items_ins_v2.json            (or the *_1000.json pair)
    <root>/items_human_ins.json                              (the 12,087 human instructions)
    <root>/il_trajs_finalized_images.jsonl, goal_query_map.json   (optional: human demonstrations)

``<root>`` is the scenario's ``data.path``, else ``$WEBSHOP_DATA``, else
``$AUTORL_GYM_DATA_DIR/webshop``. Goals are built and ordered as the original builds them
(:func:`autorl_gym.interactive.shop_data.human_goals`), so a session number is the original's.
The splits are ranges of session numbers in the scenario's ``interactive`` block: ``test_split``
(``0-99``), ``dev_split`` (the pool a seeded ``data.dev_size`` slice is drawn from) and
``train_split``. Only the training sessions (and the demonstrations of their goals) and the
product files are visible: ``items_human_ins.json`` holds every split's goals and is never mounted.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from autorl_gym.core.durable import exclusive
from autorl_gym.core.family import register_family
from autorl_gym.core.paths import cache_dir
from autorl_gym.core.scenario import ScenarioError
from autorl_gym.tasks.interactive import GamesTask, games_assets

if TYPE_CHECKING:
    from autorl_gym.core.assets import ScenarioAssets
    from autorl_gym.core.scenario import Scenario

BUILD_VERSION = 1
DEMO_FILES = ("il_trajs_finalized_images.jsonl", "goal_query_map.json")


def session_range(text: str, n: int, field: str) -> range:
    """``"a-b"`` (inclusive), ``"a-"`` (to the end) or ``"a"``, clipped to ``n`` sessions."""
    try:
        lo, dash, hi = text.partition("-")
        start = int(lo)
        stop = (int(hi) + 1 if hi.strip() else max(n, start + 1)) if dash else start + 1
    except ValueError as e:
        raise ScenarioError(f"field 'interactive.{field}': {text!r} is not a session range "
                            "like 0-99 or 1500-") from e
    if start < 0 or stop <= start:
        raise ScenarioError(f"field 'interactive.{field}': {text!r} is an empty or negative range")
    return range(min(start, n), min(stop, n))


def split_sessions(n: int, scenario: Scenario) -> dict[str, list[int]]:
    """Session numbers of each split: test and train ranges, and a seeded slice of the dev pool."""
    spec = scenario.interactive
    assert spec is not None
    test = list(session_range(spec.test_split, n, "test_split"))
    pool = [i for i in session_range(spec.dev_split, n, "dev_split") if i not in set(test)]
    size = scenario.data.dev_size
    dev = sorted(random.Random(scenario.data.dev_seed).sample(pool, size)) if 0 < size < len(pool) else pool
    held = set(test) | set(dev)
    train = [i for i in session_range(spec.train_split, n, "train_split") if i not in held]
    for name, ids in (("test", test), ("dev", dev), ("train", train)):
        if not ids:
            raise ScenarioError(f"{scenario.id}: the {name} split holds no session of the {n} goals "
                                "(check interactive.train_split/dev_split/test_split)")
    return {"train": train, "dev": dev, "test": test}


def webshop_root(scenario: Scenario) -> Path:
    """The WebShop data folder, checked: product files and ``items_human_ins.json``."""
    from autorl_gym.interactive.shop_data import HUMAN_INS_FILE, ShopDataError, product_files

    candidates: list[tuple[str, Path]] = []
    if scenario.data.path is not None:
        candidates.append(("data.path", Path(scenario.data.path)))
    if os.environ.get("WEBSHOP_DATA"):
        candidates.append(("$WEBSHOP_DATA", Path(os.environ["WEBSHOP_DATA"])))
    if os.environ.get("AUTORL_GYM_DATA_DIR"):
        candidates.append(("$AUTORL_GYM_DATA_DIR/webshop",
                           Path(os.environ["AUTORL_GYM_DATA_DIR"]) / "webshop"))
    if not candidates:
        raise ScenarioError(f"{scenario.id}: no WebShop data: set data.path, $WEBSHOP_DATA or "
                            "$AUTORL_GYM_DATA_DIR (with a webshop/ folder) to a folder holding "
                            "WebShop's items_shuffle*.json, items_ins_v2*.json, items_human_ins.json")
    source, root = candidates[0]
    root = root.expanduser()
    try:
        product_files(root)
    except ShopDataError as e:
        raise ScenarioError(f"{scenario.id}: WebShop data from {source}: {e}") from e
    if not (root / HUMAN_INS_FILE).is_file():
        raise ScenarioError(f"{scenario.id}: WebShop data at {root} (from {source}) lacks {HUMAN_INS_FILE}")
    return root.resolve()


def _demo_goal(text: str) -> str:
    """An instruction as the original's IL code matches demonstrations to goals."""
    text = text.lower().replace('"', "").replace("'", "")
    for prefix in ("amazon shopping game\ninstruction:", "webshop\ninstruction:"):
        text = text.replace(prefix, "")
    text = text.replace("\n[button] search [button_]", "").strip()
    return text.split(", and price lower than")[0].strip().strip(".")


def copy_demonstrations(root: Path, goals: list[dict[str, Any]], train: list[int], out: Path) -> int:
    """The human demonstrations whose goal is a training session (others are left out)."""
    keep = {_demo_goal(goals[i]["instruction_text"]) for i in train}
    n = 0
    traj = root / DEMO_FILES[0]
    if traj.is_file():
        out.mkdir(parents=True, exist_ok=True)
        with traj.open(encoding="utf-8") as src, (out / DEMO_FILES[0]).open("w", encoding="utf-8") as dst:
            for line in src:
                try:
                    states = json.loads(line).get("states") or [""]
                except ValueError:
                    continue
                if _demo_goal(str(states[0])) in keep:
                    dst.write(line if line.endswith("\n") else line + "\n")
                    n += 1
    queries = root / DEMO_FILES[1]
    if queries.is_file():
        out.mkdir(parents=True, exist_ok=True)
        data = json.loads(queries.read_text(encoding="utf-8"))
        kept = {k: v for k, v in data.items() if _demo_goal(k) in keep}
        (out / DEMO_FILES[1]).write_text(json.dumps(kept, indent=1), encoding="utf-8")
        n += len(kept)
    return n


def write_split(sessions_dir: Path, shop_dir: Path, goals: list[dict[str, Any]], ids: list[int]) -> None:
    from autorl_gym.interactive.webshop import ShopSession, write_session

    sessions_dir.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(shop_dir, sessions_dir)
    for i in ids:
        name = f"session_{i:05d}"
        write_session(sessions_dir / f"{name}.shop.json",
                      ShopSession(session=i, name=name, shop=rel, goal=goals[i]))


def build_webshop(root: Path, dest: Path, scenario: Scenario) -> dict[str, Any]:
    """The shop view (links to the product files, a saved BM25 index), the split session files
    and the training demonstrations, in ``dest``."""
    from autorl_gym.interactive.shop_data import HUMAN_INS_FILE, Shop, _read_json, product_files

    shop = dest / "train" / "shop"
    shop.mkdir(parents=True)
    for f in product_files(root):
        (shop / f.name).symlink_to(f)
    catalogue = Shop(shop, save_index=True)  # saves the index into shop/index
    goals = _goals(catalogue, _read_json(root / HUMAN_INS_FILE))
    splits = split_sessions(len(goals), scenario)
    write_split(dest / "train" / "sessions", shop, goals, splits["train"])
    for split in ("dev", "test"):
        write_split(dest / "hidden" / split, shop, goals, splits[split])
    demos = copy_demonstrations(root, goals, splits["train"], dest / "train" / "demonstrations")
    manifest = {"version": BUILD_VERSION, "root": str(root), "goals": len(goals),
                "products": len(catalogue.products), "demonstrations": demos,
                "sizes": {k: len(v) for k, v in splits.items()}}
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _goals(catalogue, human_ins: Any) -> list[dict[str, Any]]:  # noqa: ANN001
    from autorl_gym.interactive.shop_data import ShopDataError, human_goals

    if not isinstance(human_ins, dict):
        raise ShopDataError("items_human_ins.json: expected a mapping of ASIN to instructions")
    return human_goals(catalogue.products, catalogue.prices, human_ins)


def _build_key(root: Path, scenario: Scenario) -> str:
    from autorl_gym.interactive.shop_data import HUMAN_INS_FILE, product_files

    h = hashlib.sha256(f"v{BUILD_VERSION}\0{root}\0".encode())
    for f in [*product_files(root), root / HUMAN_INS_FILE, *(root / d for d in DEMO_FILES)]:
        st = f.stat() if f.is_file() else None
        h.update(f"{f.name}:{st.st_size if st else -1}:{st.st_mtime_ns if st else -1}\n".encode())
    spec = scenario.interactive
    assert spec is not None
    h.update(f"{spec.train_split}|{spec.dev_split}|{spec.test_split}|{scenario.data.dev_size}|"
             f"{scenario.data.dev_seed}".encode())
    return h.hexdigest()[:16]


def ensure_webshop(root: Path, scenario: Scenario) -> Path:
    """The built sessions for this data and these splits (cached, file-locked, atomic)."""
    parent = cache_dir() / "webshop"
    built = parent / _build_key(root, scenario)
    if (built / "manifest.json").is_file():
        return built
    parent.mkdir(parents=True, exist_ok=True)
    with exclusive(parent / f".{built.name}.lock"):
        if not (built / "manifest.json").is_file():
            tmp = Path(tempfile.mkdtemp(prefix=f".{built.name}.", dir=parent))
            try:
                build_webshop(root, tmp, scenario)
                for p in [tmp, *tmp.rglob("*")]:
                    if not p.is_symlink():
                        p.chmod(0o755 if p.is_dir() else 0o644)
                if built.exists():
                    shutil.rmtree(built)
                tmp.rename(built)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
    return built


@register_family
class WebShopTask(GamesTask):
    name: ClassVar[str] = "webshop"
    data_sources: ClassVar[tuple[str, ...]] = ("webshop",)
    description: ClassVar[str] = "WebShop sessions (real products, human instructions), success rate"

    def describe_train_data(self, scenario: Scenario) -> str:
        return str(scenario.data.path) if scenario.data.path else "$WEBSHOP_DATA (training sessions)"

    def resolve_assets(self, scenario: Scenario, base_model: str | None = None,
                       progress: bool = True) -> ScenarioAssets:
        from autorl_gym.interactive.shop_data import product_files

        root = webshop_root(scenario)
        built = ensure_webshop(root, scenario)
        hidden = {"dev": built / "hidden" / "dev", "test": built / "hidden" / "test"}
        extra = [f.resolve() for f in product_files(root)]  # the view links to them
        return games_assets(scenario, built / "train", hidden, "data/sessions", extra,
                            base_model, progress)

    def assets_if_present(self, scenario: Scenario) -> ScenarioAssets | None:
        from autorl_gym.core.assets import base_model_present

        if not base_model_present(scenario.base_model):
            return None
        try:
            return self.resolve_assets(scenario, progress=False)
        except (ScenarioError, OSError, ValueError):
            return None
