"""The micro WebShop scenario: a generated catalogue in WebShop's layout, sessions from disjoint
seeds, the same engine and reward, the micro policy's baseline, and the scripted agent's episode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from autorl_gym.interactive import expert_policy, find_games, rollout
from autorl_gym.interactive.shop_data import Shop, product_files
from autorl_gym.interactive.webshop import ShopEnv
from autorl_gym.micro.shop_catalogue import make_goals, make_products
from autorl_gym.micro.webshop import (
    MAX_STEPS,
    PROMPT,
    SEEDS,
    SIZES,
    WebShopManifest,
    ensure_webshop_assets,
    write_sessions,
)
from autorl_gym.scenarios.catalog import get_scenario


@pytest.fixture(scope="session")
def webshop_assets():  # noqa: ANN201
    return ensure_webshop_assets(progress=False)


def test_catalogue_and_sessions_are_deterministic_in_webshops_layout(tmp_path: Path) -> None:
    assert make_products(3, 1) == make_products(3, 1) and make_products(3, 1) != make_products(3, 2)
    products = make_products(3, 1)
    assert make_goals(products, 5, SEEDS["test"]) == make_goals(products, 5, SEEDS["test"])
    n = write_sessions(tmp_path / "a")
    write_sessions(tmp_path / "b")
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()
    items, attrs = product_files(tmp_path / "a" / "train" / "shop")
    assert (items.name, attrs.name) == ("items_shuffle.json", "items_ins_v2.json")
    assert len(Shop(tmp_path / "a" / "train" / "shop").products) == n


def test_cached_build_has_disjoint_splits_and_the_expert_wins(webshop_assets) -> None:  # noqa: ANN001
    man = WebShopManifest.model_validate_json((webshop_assets.root / "manifest.json").read_text())
    assert man.sizes == SIZES and man.seeds == SEEDS
    refs = {s: find_games(webshop_assets.split_dir(s)) for s in SIZES}
    assert {s: len(v) for s, v in refs.items()} == SIZES
    goals = {s: {ShopEnv(r).goal["instruction_text"] for r in v} for s, v in refs.items()}
    assert not (goals["train"] & goals["dev"] or goals["train"] & goals["test"]
                or goals["dev"] & goals["test"])
    assert not webshop_assets.split_dir("test").is_relative_to(webshop_assets.train_dir)
    episodes = rollout(refs["test"], expert_policy, max_steps=MAX_STEPS, prompt=PROMPT, expert=True)
    assert all(e.won and e.reward == 1.0 for e in episodes), [(e.game, e.reward) for e in episodes]
    sc = get_scenario("AutoRL-Micro-WebShop-v0")
    assert sc.interactive.max_steps == MAX_STEPS and sc.interactive.prompt == PROMPT


def test_expert_finishes_a_winning_purchase_and_leaves_a_losing_one(webshop_assets) -> None:  # noqa: ANN001
    """On another product's page the expert's label is to buy it when that purchase (with the
    goal's options) would win, and to go back to the target otherwise."""
    finished = left = 0
    for ref in find_games(webshop_assets.split_dir("train")):
        env = ShopEnv(ref, max_steps=MAX_STEPS, expert=True)
        search = env.reset().expert_actions[0]
        others = [c for c in env.step(search).admissible_commands
                  if c[len("click["):-1].upper() in env.shop.by_asin
                  and c[len("click["):-1].upper() != env.goal["asin"]]
        for cmd in others:
            env.reset()
            env.step(search)
            page = env.step(cmd)
            if env.buying_wins(cmd[len("click["):-1].upper(), {}):
                if finished >= 3:
                    continue
                assert page.expert_actions[-1] == "click[buy now]", page.expert_actions
                assert "click[< prev]" not in page.expert_actions
                for a in page.expert_actions:
                    page = env.step(a)
                assert page.won and page.done
                finished += 1
            else:
                assert page.expert_actions[0] == "click[< prev]", page.expert_actions
                left += 1
        if finished >= 3 and left:
            break
    assert finished and left, (finished, left)


@pytest.mark.slow
def test_scripted_micro_webshop_episode_runs_end_to_end(tmp_path, webshop_assets) -> None:  # noqa: ANN001
    """`autorl-gym run --env AutoRL-Micro-WebShop-v0 --agent scripted`: the scripted agent
    collects the expert's demonstrations with the rollout API inside the sandbox, trains, submits
    and finishes; the episode is graded by rollouts and improves the test success rate."""
    cmd = [sys.executable, "-m", "autorl_gym.cli.main", "run", "--env", "AutoRL-Micro-WebShop-v0",
           "--agent", "scripted", "--results-dir", str(tmp_path / "results"),
           # SFT capped for the suite's time budget; one torch thread (faster on shared cores)
           "--agent-option", "train_env={SFT_EPOCHS: 1, NOISY_ROLLOUTS: 1, SFT_THREADS: 1}",
           "--workspace-root", str(tmp_path / "workspace")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=2400,
                          env={**os.environ, "COLUMNS": "160"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = next((tmp_path / "results").iterdir())
    fb = json.loads((run / "feedback.json").read_text())
    assert fb["status"] == "finished" and fb["submission_id"] == 1 and fb["metric"] == "success_rate"
    assert fb["improvement"] == pytest.approx(fb["score"] - fb["baseline"])
    assert 0 < fb["baseline"] < 50, fb  # low, but not zero
    assert fb["improvement"] > 0, fb
    traj = (run / "trajectory.jsonl").read_text()
    assert "(prompt, expert command) pairs" in traj and "saved model and tokenizer" in traj
    print(f"\nmicro WebShop episode: success {fb['baseline']:.2f} -> {fb['score']:.2f} "
          f"({fb['improvement']:+.2f}) in {fb['elapsed_s']:.0f} s")
