#!/usr/bin/env python3
"""autorl-timer: the time left in this run, as the grading server counts it.

Copied (as ``autorl-timer``, standard library only) into a read-only folder on the PATH of every
external agent's sandbox by :mod:`autorl_gym.agents.timer`. It asks the grading server, through
the run's bridge: ``GET $GRADING_SERVER_URL/runs/$RUN_ID/time`` with the run's token, or, for an
agent given no token (AutoRL-Bench's protocol), ``GET $GRADING_SERVER_URL/time``. The server
counts from the ledger, so what this prints is the budget the runner enforces; the workspace's
run_meta.json (which the agent may rewrite) is never read.

    autorl-timer            1234 s left of 3600 s (2366 s elapsed; deadline 2026-...)
    autorl-timer --seconds  1234
    autorl-timer --json     the server's answer
"""

import json
import os
import sys
import urllib.error
import urllib.request


def main(argv: list[str]) -> int:
    url = os.environ.get("GRADING_SERVER_URL")
    run_id, token = os.environ.get("RUN_ID"), os.environ.get("RUN_TOKEN")
    if not url:
        print("autorl-timer: GRADING_SERVER_URL is not set (not in an agent's sandbox?)", file=sys.stderr)
        return 2
    if run_id and token:
        req = urllib.request.Request(f"{url}/runs/{run_id}/time",
                                     headers={"Authorization": f"Bearer {token}"})
    else:
        req = urllib.request.Request(f"{url}/time")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            data = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as e:
        print(f"autorl-timer: the grading server did not answer ({e})", file=sys.stderr)
        return 1
    left = float(data.get("remaining_s", data.get("remaining", 0.0)))
    if "--json" in argv:
        print(json.dumps(data))
    elif "--seconds" in argv:
        print(int(left))
    else:
        print(f"{left:.0f} s left of {float(data.get('budget_seconds', 0)):.0f} s "
              f"({float(data.get('elapsed_s', 0)):.0f} s elapsed; deadline {data.get('deadline')})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
