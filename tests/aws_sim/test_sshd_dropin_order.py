"""The bastion's sshd drop-in must win over cloud-init's: sshd keeps the first value it reads for a
keyword, and Debian's sshd_config includes sshd_config.d/*.conf in lexical order. Checked with the
real sshd of the host image against the drop-in path the bastion role writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
IMAGE = "votingapp-host:bookworm"


def test_bastion_dropin_beats_cloud_init():
    dropin = yaml.safe_load((REPO / "roles" / "bastion" / "vars" / "main.yml").read_text())["__bastion_sshd_dropin"]
    assert dropin.startswith("/etc/ssh/sshd_config.d/")
    script = (
        "ssh-keygen -A >/dev/null && mkdir -p /run/sshd"
        " && echo 'PasswordAuthentication yes' > /etc/ssh/sshd_config.d/50-cloud-init.conf"
        f" && echo 'PasswordAuthentication no' > {dropin}"
        " && sshd -T | grep -i '^passwordauthentication '"
    )
    out = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", "sh", IMAGE, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert out.stdout.split() == ["passwordauthentication", "no"], out.stdout + out.stderr
