#!/usr/bin/env python3
"""Runs galaxy-importer (Galaxy's own import step) on a built tarball and fails on any warning or
error it reports, except the ones listed in KNOWN with the reason we cannot fix them. A KNOWN
entry that no longer appears fails too, so the list cannot outlive its reason.

Usage: scripts/galaxy_import.py IMPORTER_PYTHON TARBALL   (.config/galaxy-importer.cfg is used)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# message pattern -> why it stays
KNOWN = {
    r"Ignore files skip ansible-test sanity tests, found ignore-2\.\d+\.txt with 3 statement\(s\)": (
        "validate-modules:missing-gplv3-license on our three modules: the collection is Apache-2.0, "
        "which ansible-test accepts only through an ignore entry"
    ),
}


def main() -> int:
    python, tarball = sys.argv[1], Path(sys.argv[2]).resolve()
    # The importer runs ansible-doc from PATH: its own venv's, not whichever ansible-core is first.
    env = dict(
        os.environ,
        GALAXY_IMPORTER_CONFIG=str(REPO / ".config" / "galaxy-importer.cfg"),
        PATH=os.pathsep.join([str(Path(python).parent), os.environ["PATH"]]),
    )
    proc = subprocess.run(
        [python, "-m", "galaxy_importer.main", str(tarball)],
        cwd=tarball.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    log = proc.stdout + proc.stderr
    print(log, end="")
    if proc.returncode != 0 or "Importer processing completed successfully" not in log:
        print(f"galaxy_import: the importer failed (exit {proc.returncode})", file=sys.stderr)
        return 1
    reported = [line for line in log.splitlines() if re.match(r"^(WARNING|ERROR)\b", line)]
    unexpected = [line for line in reported if not any(re.search(p, line) for p in KNOWN)]
    gone = [p for p in KNOWN if not any(re.search(p, line) for line in reported)]
    result = json.loads((tarball.parent / "importer_result.json").read_text())
    names = sorted(f"{c['content_type']}:{c['name']}" for c in result["contents"])
    print(f"galaxy_import: {len(names)} contents, requires_ansible {result['requires_ansible']}")
    for pattern, reason in KNOWN.items():
        print(f"galaxy_import: known, not fixable here: {pattern}: {reason}")
    for line in unexpected:
        print(f"galaxy_import: unexpected: {line}", file=sys.stderr)
    for pattern in gone:
        print(f"galaxy_import: the known message {pattern!r} no longer appears: remove it from KNOWN", file=sys.stderr)
    return 1 if unexpected or gone else 0


if __name__ == "__main__":
    sys.exit(main())
