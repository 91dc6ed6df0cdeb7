"""The stack contract (roles/votingapp) and the roles that derive from it stay in step.

Each fact of the stack is a votingapp_* variable documented once in roles/votingapp; the roles'
defaults name it, their argument specs say so, and vote and result (one implementation, two
public roles) document the options they share the same way.
"""

import re
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[3] / "roles"
STACK_ROLES = ["vote", "worker", "result", "redis", "postgres", "bastion", "monitoring"]


def load(path: Path):
    return yaml.safe_load(path.read_text())


def options(role: str) -> dict:
    return load(ROLES / role / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]


CONTRACT = options("votingapp")
CONTRACT_DEFAULTS = load(ROLES / "votingapp" / "defaults" / "main.yml")


def test_every_contract_default_is_documented():
    assert set(CONTRACT_DEFAULTS) <= set(CONTRACT)
    for name, spec in CONTRACT.items():
        if "default" in spec:
            assert CONTRACT_DEFAULTS[name] == spec["default"], name


def test_passwords_have_no_default():
    passwords = [name for name in CONTRACT if name.endswith("_password")]
    assert len(passwords) == 7
    for name in passwords:
        assert name not in CONTRACT_DEFAULTS
        assert CONTRACT[name].get("no_log") is True


@pytest.mark.parametrize("role", STACK_ROLES)
def test_stack_roles_depend_on_the_contract(role):
    deps = [d["role"] if isinstance(d, dict) else d for d in load(ROLES / role / "meta" / "main.yml")["dependencies"]]
    assert deps[0] == "votingapp.stack.votingapp"


@pytest.mark.parametrize("role", STACK_ROLES)
def test_derived_defaults_name_a_contract_variable_and_say_so(role):
    defaults = load(ROLES / role / "defaults" / "main.yml")
    specs = options(role)
    derived = {
        name: re.findall(r"\b(votingapp_[a-z_]+)\b", str(value))
        for name, value in defaults.items()
        if isinstance(value, str | list) and "{{" in str(value) and "votingapp_" in str(value)
    }
    assert derived, f"{role} derives nothing from the contract"
    for name, used in derived.items():
        for var in used:
            assert var in CONTRACT, f"{role}: {name} uses {var}, which roles/votingapp does not document"
        spec = specs[name]
        assert "default" not in spec, f"{role}: {name} derives from the contract, no literal default in its spec"
        assert "required" not in spec, f"{role}: {name} has a default, it cannot be required"
        text = " ".join(spec["description"] if isinstance(spec["description"], list) else [spec["description"]])
        assert "votingapp" in text, f"{role}: {name} must say which contract variable it defaults to"


def test_vote_and_result_document_their_shared_options_alike():
    vote, result = options("vote"), options("result")
    shared = {n[len("vote_") :] for n in vote} & {n[len("result_") :] for n in result}
    assert len(shared) >= 15
    for suffix in shared:
        a, b = dict(vote["vote_" + suffix]), dict(result["result_" + suffix])
        a.pop("description"), b.pop("description")
        if suffix == "container_name":
            a.pop("default"), b.pop("default")
        assert a == b, suffix


def test_site_stops_before_any_change_when_options_disagree(tmp_path):
    """site.yml's contract play fails on the controller, naming both values, before the data tier."""
    import json
    import os
    import subprocess

    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {"ansible_connection": "local"},
                    "children": {
                        "vote": {"hosts": {"web1.example.test": {"vote_options": ["Cats", "Dogs"]}}},
                        "worker": {"hosts": {"app1.example.test": {"worker_options": ["Cats", "Birds"]}}},
                        "result": {"hosts": {"web1.example.test": {}}},
                        "redis": {"hosts": {"db1.example.test": {}}},
                        "postgres": {"hosts": {"db1.example.test": {}}},
                        "bastion": {"hosts": {"edge.example.test": {}}},
                    },
                }
            }
        )
    )
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1")
    run = subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(ROLES.parent / "playbooks" / "site.yml"), "--check"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert run.returncode != 0
    report = json.loads(run.stdout)
    plays = [play["play"]["name"] for play in report["plays"]]
    assert "Data tier" not in plays, plays
    messages = " ".join(
        str(result.get("msg", ""))
        for play in report["plays"]
        for task in play["tasks"]
        for result in task["hosts"].values()
        if result.get("failed")
    )
    assert 'vote_options on web1.example.test is ["Cats", "Dogs"]' in messages
    assert 'worker_options on app1.example.test is ["Cats", "Birds"]' in messages
