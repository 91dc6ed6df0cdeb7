#!/usr/bin/env python3
"""Every support claim of the collection says what its tests run, and nothing more.

Derived from the tests:
- ansible-core lines: the dev venv's pin (requirements/dev.in) and the `make matrix` pins
  (requirements/matrix-*.txt), each with its Python;
- distributions per role: the Molecule scenarios' host images (votingapp-host*:SUITE), following each
  scenario's converge playbook through the plays' hosts, include_role / role: entries, role
  dependencies and the roles those include; controller-side roles (plays on localhost, the moto
  tests) run on the controller, which is Debian bookworm on this project's machines.

Checked against the claims:
- meta/runtime.yml requires_ansible's lower bound is the oldest tested line, and every role's
  meta/main.yml min_ansible_version is that line;
- every role's meta/main.yml platforms are exactly the distributions it was tested on;
- galaxy.yml lists every collection that roles, playbooks and plugins use;
- the README's support table (between the support-table markers) is the table this script renders
  (`--write` rewrites it).

Usage: scripts/support_claims.py [--write]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CONTROLLER = ("Debian", "bookworm")
SUITES = {"bookworm": ("Debian", "12"), "trixie": ("Debian", "13")}
START, END = "<!-- support-table:start -->", "<!-- support-table:end -->"
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "meta" / "main.yml").is_file())


def load(path: Path):
    return yaml.safe_load(path.read_text())


def dev_core_line() -> str:
    return re.search(r"^ansible-core==(\d+\.\d+)", (REPO / "requirements" / "dev.in").read_text(), re.M).group(1)


def tested_core_lines() -> dict[str, str]:
    """ansible-core line -> Python version it is tested with."""
    lines = {dev_core_line(): "3.11"}
    for pin in sorted((REPO / "requirements").glob("matrix-*.txt")):
        text = pin.read_text()
        core = re.search(r"^ansible-core==(\d+\.\d+)", text, re.M).group(1)
        python = re.search(r"\(Python (\d+\.\d+)\)", text).group(1)
        lines[core] = python
    return dict(sorted(lines.items(), key=lambda kv: tuple(map(int, kv[0].split(".")))))


def roles_named(text: str) -> set[str]:
    return {m for m in re.findall(r"votingapp\.stack\.(\w+)", text) if m in ROLES}


def role_closure(names: set[str]) -> set[str]:
    """The roles, with every role they depend on or include, transitively."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        role = todo.pop()
        if role in seen:
            continue
        seen.add(role)
        root = REPO / "roles" / role
        text = (root / "meta" / "main.yml").read_text()
        for tasks in sorted((root / "tasks").glob("*.yml")) if (root / "tasks").is_dir() else []:
            text += tasks.read_text()
        todo.extend(roles_named(text) - seen)
    return seen


def playbook_plays(path: Path) -> list[tuple[str, set[str]]]:
    """(hosts pattern, roles) of each play, following import_playbook."""
    plays = []
    for play in load(path) or []:
        target = play.get("ansible.builtin.import_playbook", play.get("import_playbook"))
        if target:
            if target.startswith("votingapp.stack."):
                sub = REPO / "playbooks" / (target.removeprefix("votingapp.stack.").replace(".", "/") + ".yml")
            else:
                sub = path.parent / target
            plays.extend(playbook_plays(sub))
            continue
        plays.append((str(play.get("hosts", "")), roles_named(yaml.safe_dump(play))))
    return plays


def image_suite(image: str) -> str:
    image = re.sub(r"^\$\{\w+:-(.*)\}$", r"\1", image)  # an environment override, by default
    match = re.fullmatch(r"votingapp-host(?:-docker)?:(\w+)", image)
    if not match:
        sys.exit(f"support_claims: platform image {image!r} is not a votingapp host image")
    return match.group(1)


def tested_platforms() -> dict[str, set[tuple[str, str]]]:
    """role -> {(distribution, suite)} it converged on in a Molecule scenario or on the controller."""
    default = load(REPO / ".config" / "molecule" / "config.yml")["platforms"]
    tested: dict[str, set[tuple[str, str]]] = {role: set() for role in ROLES}
    for molecule_yml in sorted((REPO / "molecule").glob("*/molecule.yml")):
        scenario = molecule_yml.parent
        platforms = load(molecule_yml).get("platforms") or default
        hosts = [(set(p.get("groups", [])), image_suite(p["image"])) for p in platforms]
        books = [scenario / name for name in ("prepare.yml", "converge.yml") if (scenario / name).is_file()]
        for hosts_pattern, roles in (play for book in books for play in playbook_plays(book)):
            groups = set(re.split(r"[:,]", hosts_pattern))
            on_controller = groups & {"localhost", "127.0.0.1"}
            suites = (
                {CONTROLLER[1]}
                if on_controller
                else {suite for host_groups, suite in hosts if "all" in groups or host_groups & groups}
            )
            for role in role_closure(roles):
                tested[role] |= {("Debian", s) for s in suites}
    # The AWS roles run on the controller against moto (tests/integration, make test-aws).
    for role in role_closure(roles_named((REPO / "playbooks" / "aws_up.yml").read_text())):
        tested[role].add(CONTROLLER)
    return tested


def claimed_platforms(meta: dict) -> set[tuple[str, str]]:
    return {(p["name"], v) for p in meta["galaxy_info"].get("platforms", []) for v in p.get("versions", [])}


def used_collections() -> set[str]:
    used = set()
    for base in ("roles", "playbooks", "plugins"):
        for path in (REPO / base).rglob("*"):
            if path.suffix in {".yml", ".yaml", ".py", ".j2"}:
                used |= set(re.findall(r"\b((?:amazon|community|ansible)\.[a-z_]+)\.[a-z_0-9]+", path.read_text()))
    return used - {"ansible.builtin", "ansible.module_utils", "ansible.plugins", "ansible.errors"}


def render_table(core: dict[str, str], tested: dict[str, set[tuple[str, str]]]) -> str:
    rows = [
        "| ansible-core | Python (controller) | tested by |",
        "|---|---|---|",
        *(
            f"| {line} | {py} | `make sanity` and `make unit` (dev venv), every Molecule scenario and `make test` |"
            if line == dev_core_line()
            else f"| {line} | {py} | `make matrix` (ansible-test sanity but its linters, unit tests) |"
            for line, py in core.items()
        ),
        "",
        "| role | distributions it is tested on (Molecule, or the controller for controller-side roles) |",
        "|---|---|",
    ]
    for role in ROLES:
        names = ", ".join(f"{d} {SUITES[s][1]} ({s})" for d, s in sorted(tested[role], key=lambda p: SUITES[p[1]][1]))
        rows.append(f"| `votingapp.stack.{role}` | {names} |")
    return "\n".join(rows)


def main() -> int:
    errors = []
    core = tested_core_lines()
    oldest = next(iter(core))
    requires = load(REPO / "meta" / "runtime.yml")["requires_ansible"]
    match = re.fullmatch(r">=(\d+\.\d+)(?:\.0)?", requires)
    if not match or match.group(1) != oldest:
        errors.append(f"meta/runtime.yml requires_ansible {requires!r}: the oldest tested line is {oldest}")
    tested = tested_platforms()
    for role in ROLES:
        meta = load(REPO / "roles" / role / "meta" / "main.yml")
        min_version = str(meta["galaxy_info"].get("min_ansible_version"))
        if min_version != oldest:
            errors.append(f"roles/{role}/meta/main.yml: min_ansible_version {min_version}, oldest tested: {oldest}")
        if not tested[role]:
            errors.append(f"roles/{role}: no Molecule scenario or controller test runs it")
        claimed = claimed_platforms(meta)
        if claimed != tested[role]:
            errors.append(
                f"roles/{role}/meta/main.yml platforms {sorted(claimed)}: tested on {sorted(tested[role])}"
                f" (untested: {sorted(claimed - tested[role])},"
                f" tested but not claimed: {sorted(tested[role] - claimed)})"
            )
    listed = set(load(REPO / "galaxy.yml").get("dependencies") or {})
    for missing in sorted(used_collections() - listed):
        errors.append(f"galaxy.yml dependencies lack {missing}, which the collection uses")

    table = render_table(core, tested)
    readme_path = REPO / "README.md"
    readme = readme_path.read_text()
    block = re.search(rf"{re.escape(START)}\n(.*?){re.escape(END)}", readme, re.S)
    if not block:
        errors.append(f"README.md has no support table between {START} and {END}")
    elif block.group(1) != table + "\n":
        if "--write" in sys.argv:
            readme_path.write_text(readme.replace(block.group(0), f"{START}\n{table}\n{END}"))
            print("support_claims: README.md support table rewritten")
        else:
            errors.append("README.md support table differs from what the tests run (scripts/support_claims.py --write)")

    for error in errors:
        print(f"support_claims: {error}", file=sys.stderr)
    if not errors:
        print(f"support_claims: ansible-core {', '.join(core)}; {len(ROLES)} roles' claims match their tests")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
