"""The offline get-pip stand-in must install like a pip run by the user: the machine's pip
configuration file and PIP_* variables apply after ensurepip has bootstrapped (issue: make test
failed on a fresh machine whose package index is reached through the machine's own CA).

Each case offers a package that exists only in a local find-links directory and is reachable only
through the setting under test (no index at all otherwise), so a stand-in that drops the user's
pip settings fails to install it."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

STAND_IN = Path(__file__).resolve().parents[3] / "scripts" / "ansible_test_get_pip.py"
PROBE = "votingapp_pip_probe"
PROBE_VERSION = "1.0"


def record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def build_probe_wheel(directory: Path) -> None:
    """A minimal valid wheel (PEP 427), so the test needs no build backend and no index."""
    info = f"{PROBE}-{PROBE_VERSION}.dist-info"
    files = {
        f"{PROBE}/__init__.py": b"MARKER = 'installed from find-links'\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: {PROBE_VERSION}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    records = [record_line(name, data) for name, data in files.items()] + [f"{info}/RECORD,,"]
    with zipfile.ZipFile(directory / f"{PROBE}-{PROBE_VERSION}-py3-none-any.whl", "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{info}/RECORD", "\n".join(records) + "\n")


@pytest.fixture
def venv_without_pip(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return venv / "bin" / "python"


@pytest.fixture
def find_links(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    build_probe_wheel(wheels)
    return wheels


def pip_settings_by_config_file(tmp_path, wheels):
    config = tmp_path / "pip.conf"
    config.write_text(f"[global]\nno-index = true\nfind-links = {wheels}\n")
    return {"PIP_CONFIG_FILE": str(config)}


def pip_settings_by_variables(tmp_path, wheels):
    return {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}


@pytest.mark.parametrize("settings", [pip_settings_by_config_file, pip_settings_by_variables])
def test_stand_in_installs_with_the_users_pip_settings(tmp_path, venv_without_pip, find_links, settings):
    # ansible-test runs the script with only PATH, HOME and LC_ALL, plus what the machine configures.
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "LC_ALL": "C.UTF-8"}
    env.update(settings(tmp_path, find_links))
    run = subprocess.run(
        [
            str(venv_without_pip),
            str(STAND_IN),
            "--no-setuptools",
            "--no-wheel",
            "--retries",
            "0",
            "--timeout",
            "5",
            f"{PROBE}=={PROBE_VERSION}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    installed = subprocess.run(
        [str(venv_without_pip), "-c", f"import {PROBE}; print({PROBE}.MARKER)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert installed.stdout.strip() == "installed from find-links"
    pip_present = subprocess.run([str(venv_without_pip), "-m", "pip", "--version"], capture_output=True, check=False)
    assert pip_present.returncode == 0
