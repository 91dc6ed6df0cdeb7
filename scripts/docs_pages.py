#!/usr/bin/env python3
"""Pages of the docs site that antsibull-docs does not make, generated from their one source.

- quickstart.md: the README's "Quickstart" and "Using the collection" sections, as written.
- playbooks.md: one section per playbook of the collection (playbooks/*.yml, playbooks/tiers/*.yml),
  with its FQCN, its header comment (what it does, how to run it) and its plays.

A playbook without a header comment, or a README without those sections, fails the build: the
site would otherwise silently lose the page.

Usage: scripts/docs_pages.py OUTPUT_DIR
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
README_SECTIONS = ("Quickstart", "Using the collection")


def readme_section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    if not match:
        sys.exit(f"docs_pages: README.md has no '## {title}' section")
    # Links relative to the repository point nowhere on the site: keep their text, name the file.
    body = re.sub(r"\[([^\]]+)\]\((?!https?://)([^)]+)\)", r"\1 (`\2`)", match.group(1))
    return f"## {title}\n{body}"


def header_comment(path: Path) -> str:
    lines = []
    for line in path.read_text().splitlines():
        if line.strip() == "---" and not lines:
            continue
        if not line.startswith("#"):
            break
        lines.append(line[1:].removeprefix(" "))
    if not lines:
        sys.exit(f"docs_pages: {path.relative_to(REPO)} has no header comment saying what it does")
    return "\n".join(lines)


def playbook_section(path: Path) -> str:
    rel = path.relative_to(REPO / "playbooks").with_suffix("")
    fqcn = "votingapp.stack." + ".".join(rel.parts)
    plays = yaml.safe_load(path.read_text()) or []
    rows = []
    for play in plays:
        if "import_playbook" in play or "ansible.builtin.import_playbook" in play:
            target = play.get("ansible.builtin.import_playbook", play.get("import_playbook"))
            rows.append(f"| {play.get('name', '')} | imports `{target}` |")
        else:
            rows.append(f"| {play.get('name', '')} | `{play.get('hosts', '')}` |")
    return "\n".join(
        [
            f"## {fqcn}",
            "",
            f"`playbooks/{rel}.yml`",
            "",
            "```text",
            header_comment(path),
            "```",
            "",
            "| play | hosts |",
            "|---|---|",
            *rows,
            "",
        ]
    )


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    readme = (REPO / "README.md").read_text()
    (out / "quickstart.md").write_text(
        "# Getting started\n\n" + "\n".join(readme_section(readme, t) for t in README_SECTIONS)
    )
    books = sorted((REPO / "playbooks").glob("*.yml")) + sorted((REPO / "playbooks" / "tiers").glob("*.yml"))
    (out / "playbooks.md").write_text(
        "# Playbooks\n\nRun them by FQCN (`ansible-playbook -i INVENTORY votingapp.stack.site`) or import them "
        "with `ansible.builtin.import_playbook`.\n\n" + "\n".join(playbook_section(p) for p in books)
    )


if __name__ == "__main__":
    main()
