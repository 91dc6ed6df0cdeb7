"""scripts/support_claims.py on this repository, and on copies of it where one claim runs ahead of
the tests: each kind of drift fails, naming what is claimed and what was tested."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
TREE = [
    "roles",
    "molecule",
    "playbooks",
    "plugins",
    "meta",
    "requirements",
    ".config",
    "galaxy.yml",
    "README.md",
    "scripts/support_claims.py",
]


def run(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(root / "scripts" / "support_claims.py")], capture_output=True, text=True, check=False
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for name in TREE:
        src, dst = REPO / name, tmp_path / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst)
    return tmp_path


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_repository_claims_what_it_tests():
    result = run(REPO)
    assert result.returncode == 0, result.stderr
    assert "roles' claims match their tests" in result.stdout


def test_a_copy_unchanged_passes(copy):
    assert run(copy).returncode == 0


def test_an_untested_distribution_fails(copy):
    edit(
        copy / "roles/docker/meta/main.yml",
        "    - name: Debian\n",
        "    - name: Ubuntu\n      versions:\n        - noble\n    - name: Debian\n",
    )
    result = run(copy)
    assert result.returncode == 1
    assert "roles/docker/meta/main.yml platforms" in result.stderr
    assert "untested: [('Ubuntu', 'noble')]" in result.stderr


def test_trixie_claims_need_a_trixie_host(copy):
    edit(
        copy / "molecule/stack/molecule.yml",
        "image: votingapp-host-docker:trixie",
        "image: votingapp-host-docker:bookworm",
    )
    stderr = run(copy).stderr
    # db1 (redis, postgres) back on bookworm: the roles only it ran on trixie lose that test.
    assert "roles/postgres/meta/main.yml platforms" in stderr
    assert "untested: [('Debian', 'trixie')]" in stderr
    # bastion and os_packages still ran on the trixie edge host.
    assert "roles/bastion/" not in stderr


def test_min_ansible_version_must_be_the_oldest_tested_line(copy):
    edit(copy / "roles/vote/meta/main.yml", 'min_ansible_version: "2.17"', 'min_ansible_version: "2.15"')
    assert "roles/vote/meta/main.yml: min_ansible_version 2.15, oldest tested: 2.17" in run(copy).stderr


def test_requires_ansible_below_the_tested_lines_fails(copy):
    edit(copy / "meta/runtime.yml", ">=2.17.0", ">=2.16.0")
    assert "requires_ansible '>=2.16.0': the oldest tested line is 2.17" in run(copy).stderr


def test_a_used_collection_missing_from_galaxy_yml_fails(copy):
    edit(copy / "galaxy.yml", '  community.general: ">=9.0.0,<12.0.0"\n', "")
    assert "galaxy.yml dependencies lack community.general" in run(copy).stderr


def test_a_stale_readme_table_fails_and_write_fixes_it(copy):
    edit(copy / "README.md", "| 2.21 | 3.12 |", "| 2.21 | 3.13 |")
    assert "README.md support table differs" in run(copy).stderr
    subprocess.run([sys.executable, str(copy / "scripts" / "support_claims.py"), "--write"], check=True)
    assert run(copy).returncode == 0
