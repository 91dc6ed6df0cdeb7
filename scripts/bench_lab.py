"""Time `make up` on a running lab (target: under 2 minutes, changed=0) and write a report.

Brings the lab up first if it is not running (not timed), then measures the same steps as
`make up`: the image and tool checks (`make prereqs venv collection-link app-image`) and
`playbooks/lab_up.yml` (site.yml + verify.yml), the latter with the ansible.posix.json callback
so the report has the time of every play and the changed count of every host. As a baseline in
the same run it times `ansible lab -m ping` (one module round trip to every host: the floor
that any task costs on this machine right now), so a slow run on a busy machine can be told
from a regression.

    python scripts/bench_lab.py --json docs/benchmarks/lab.json --markdown docs/benchmarks/lab.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S = 120
LAB_ARGS = os.environ.get("LAB_ARGS", "").split()


def log(msg: str) -> None:
    print(f"[bench-lab {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(
            f"bench-lab: {' '.join(cmd)} failed (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return elapsed, proc.stdout


def lab_running() -> bool:
    proc = subprocess.run(
        ["docker", "ps", "--filter", "label=votingapp.lab=true", "--format", "{{.Names}}"],
        capture_output=True,
        text=True,
    )
    return proc.returncode == 0 and len(proc.stdout.split()) >= 6


def play_seconds(play: dict) -> float:
    duration = play["play"]["duration"]
    parse = dt.datetime.fromisoformat
    return (
        parse(duration["end"].replace("Z", "+00:00")) - parse(duration["start"].replace("Z", "+00:00"))
    ).total_seconds()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--markdown", required=True)
    args = ap.parse_args()

    if not lab_running():
        log("the lab is not running: bringing it up first (not timed)")
        timed(["make", "-s", "up"])

    log("baseline: ansible lab -m ping")
    ping_s, _ = timed(["ansible", "-i", "inventories/lab", "lab", "-m", "ansible.builtin.ping"])

    log("timed: make prereqs venv collection-link app-image")
    checks_s, _ = timed(["make", "-s", "prereqs", "venv", "collection-link", "app-image"])

    log("timed: ansible-playbook playbooks/lab_up.yml on the running lab")
    playbook_s, out = timed(
        ["ansible-playbook", "-i", "inventories/lab", "playbooks/lab_up.yml", *LAB_ARGS],
        env={"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
    )
    report = json.loads(out[out.index("{") :])
    changed = {host: stats["changed"] for host, stats in report["stats"].items()}
    plays = [{"play": p["play"]["name"], "seconds": round(play_seconds(p), 1)} for p in report["plays"]]
    total = checks_s + playbook_s
    with open("/proc/loadavg") as f:
        load = float(f.read().split()[0])
    result = {
        "make_up_running_lab_s": round(total, 1),
        "target_s": TARGET_S,
        "changed_total": sum(changed.values()),
        "changed_by_host": changed,
        "image_and_tool_checks_s": round(checks_s, 1),
        "lab_up_playbook_s": round(playbook_s, 1),
        "baseline_ping_all_hosts_s": round(ping_s, 2),
        "converge_in_pings": round(playbook_s / ping_s, 1),
        "plays": plays,
        "cpus": os.cpu_count(),
        "loadavg_at_end": load,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    Path(args.markdown).write_text(render(result))
    verdict = "met" if total < TARGET_S and result["changed_total"] == 0 else "NOT met"
    log(
        f"make up on a running lab: {total:.1f} s, changed={result['changed_total']} (target < {TARGET_S} s): {verdict}"
    )
    return 0


def render(r: dict) -> str:
    rows = "\n".join(f"| {p['play'].replace('|', '/')} | {p['seconds']} |" for p in r["plays"])
    return f"""# `make up` on a running lab

Measured by `make bench-lab` ({r["date"]}; {r["cpus"]} CPUs, load average {r["loadavg_at_end"]} at the end).
Raw numbers: [`lab.json`](lab.json).

| metric | value | target |
|---|---|---|
| `make up` again on the running lab | {r["make_up_running_lab_s"]} s | < {r["target_s"]} s |
| changed tasks, all hosts | {r["changed_total"]} | 0 |
| of which image and tool checks (`make prereqs venv collection-link app-image`) | {r["image_and_tool_checks_s"]} s | |
| of which `lab_up.yml` (lab hosts, site.yml, verify.yml) | {r["lab_up_playbook_s"]} s | |
| baseline in the same run: `ansible lab -m ping` | {r["baseline_ping_all_hosts_s"]} s | |
| `lab_up.yml` in ping round trips | {r["converge_in_pings"]} | |

Time per play of `lab_up.yml` (the free-strategy plays run their hosts side by side):

| play | seconds |
|---|---|
{rows}
"""


if __name__ == "__main__":
    sys.exit(main())
