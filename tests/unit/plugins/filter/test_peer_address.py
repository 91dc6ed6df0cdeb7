"""votingapp.stack.peer_address: the one rule for the address a peer group reaches a host at,
through ansible-core's own templating (hostvars are lazy there) and on plain mappings."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

# `make unit` runs collection-link first: this checkout is importable as votingapp.stack.
COLLECTIONS = Path(__file__).resolve().parents[4] / ".cache" / "collections"
sys.path.insert(0, str(COLLECTIONS))
peer_address = importlib.import_module("ansible_collections.votingapp.stack.plugins.filter.peer_address").peer_address

HOSTVARS = {
    "db1": {"ansible_host": "10.0.0.5", "votingapp_address_for": {"worker": "10.1.0.5"}},
    "db2": {"ansible_host": "10.0.0.6", "votingapp_address": "db2.example.test"},
    "db3": {},
}


@pytest.mark.parametrize(
    ("hosts", "peer", "expected"),
    [
        (["db1", "db2"], "worker", "10.1.0.5"),
        (["db1"], "result", "10.0.0.5"),
        ("db1", "worker", "10.1.0.5"),
        (["db2"], "worker", "db2.example.test"),
        (["db3"], "vote", "db3"),
        ([], "vote", ""),
        (None, "vote", ""),
    ],
)
def test_the_rule_in_order(hosts, peer, expected):
    assert peer_address(hosts, HOSTVARS, peer) == expected


def test_a_bad_per_peer_value_is_named():
    with pytest.raises(AnsibleFilterError, match="votingapp_address_for of db9 must be a mapping"):
        peer_address(["db9"], {"db9": {"votingapp_address_for": "10.0.0.1"}}, "vote")


def test_through_ansible_with_templated_host_variables(tmp_path):
    inventory = {
        "all": {
            "vars": {"net": "10.9"},
            "hosts": {"pg": {"votingapp_address_for": {"result": "pg-ro"}}},
            "children": {
                "redis": {"hosts": {"cache.example.test": {"ansible_host": "{{ net }}.0.4"}}},
                "postgres": {"hosts": {"pg": {"votingapp_address": "{{ net }}.0.5"}}},
            },
        }
    }
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    expression = (
        "{{ [groups['redis'] | votingapp.stack.peer_address(hostvars, 'vote'),"
        " groups['postgres'] | votingapp.stack.peer_address(hostvars, 'worker'),"
        " groups['postgres'] | votingapp.stack.peer_address(hostvars, 'result'),"
        " groups['bastion'] | default([]) | votingapp.stack.peer_address(hostvars, 'vote')] | to_json }}"
    )
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "0"}
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("ansible")),
            "localhost",
            "-i",
            str(tmp_path / "hosts.yml"),
            "-m",
            "debug",
            "-a",
            f"msg={expression}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '["10.9.0.4", "10.9.0.5", "pg-ro", ""]' in done.stdout.replace('\\"', '"'), done.stdout
