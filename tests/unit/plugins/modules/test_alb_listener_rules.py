"""alb_listener_rules.main() with a recorded-shape fake ELBv2 client: what a run reports when AWS
rejects a call partway through (moto accepts everything the module's own checks let through, so
this failure cannot be produced against it)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import botocore.exceptions
import pytest

# `make unit` runs collection-link first: this checkout is importable as votingapp.stack.
sys.path.insert(0, str(Path(__file__).resolve().parents[4] / ".cache" / "collections"))
alb_listener_rules = importlib.import_module("ansible_collections.votingapp.stack.plugins.modules.alb_listener_rules")

LISTENER = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/x/1/2"
LB = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/x/1"
TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/vote/1"


class Exit(Exception):
    def __init__(self, failed, result):
        super().__init__(result.get("msg"))
        self.failed = failed
        self.result = result


class FakeClient:
    """Answers like ELBv2; CreateRule fails on call number ``fail_on``."""

    def __init__(self, fail_on):
        self.fail_on = fail_on
        self.created = []

    def describe_listeners(self, **kwargs):
        return {"Listeners": [{"ListenerArn": LISTENER, "LoadBalancerArn": LB}]}

    def describe_rules(self, **kwargs):
        return {"Rules": [{"RuleArn": LISTENER + "/default", "Priority": "default", "IsDefault": True}]}

    def describe_tags(self, **kwargs):
        return {"TagDescriptions": []}

    def describe_target_groups(self, **kwargs):
        return {"TargetGroups": [{"TargetGroupArn": TG, "TargetGroupName": "vote"}]}

    def create_rule(self, **kwargs):
        if len(self.created) + 1 == self.fail_on:
            error = {"Error": {"Code": "TooManyRules", "Message": "quota reached"}}
            raise botocore.exceptions.ClientError(error, "CreateRule")
        self.created.append(kwargs)
        return {"Rules": [{"RuleArn": f"{LISTENER}/rule/{len(self.created)}"}]}


class FakeModule:
    def __init__(self, params, client, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self._diff = False
        self._client = client
        self.warnings = []

    def client(self, service):
        return self._client

    def warn(self, message):
        self.warnings.append(message)

    def exit_json(self, **result):
        raise Exit(False, result)

    def fail_json(self, **result):
        raise Exit(True, result)

    def fail_json_aws(self, exception, msg, **result):
        raise Exit(True, dict(result, msg=f"{msg}: {exception}"))


def rule(name, path):
    return {"name": name, "priority": None, "conditions": {"path_pattern": [path]}, "target_group": "vote"}


def run(monkeypatch, client, rules, check_mode=False):
    params = {"listener_arn": LISTENER, "state": "present", "purge": False, "rules_quota": 100, "rules": rules}
    module = FakeModule(params, client, check_mode)
    monkeypatch.setattr(alb_listener_rules, "AnsibleAWSModule", lambda **kwargs: module)
    with pytest.raises(Exit) as exit_:
        alb_listener_rules.main()
    return exit_.value


def test_a_failure_partway_reports_the_calls_that_completed(monkeypatch):
    client = FakeClient(fail_on=2)
    result = run(monkeypatch, client, [rule("a", "/a"), rule("b", "/b"), rule("c", "/c")])
    assert result.failed
    assert result.result["operations"] == ["create_rule priority=1 rule 'a'"]
    assert result.result["changed"] is True
    assert "after 1 completed call(s)" in result.result["msg"]
    assert "TooManyRules" in result.result["msg"] or "quota reached" in result.result["msg"]
    assert len(client.created) == 1


def test_a_bad_entry_fails_before_any_call(monkeypatch):
    client = FakeClient(fail_on=0)
    bad = dict(rule("b", "/b"), conditions={"path_pattern": []})
    result = run(monkeypatch, client, [rule("a", "/a"), bad])
    assert result.failed and client.created == []
    assert result.result["operations"] == []
    assert "rules[1] 'b': conditions.path_pattern is empty" in result.result["msg"]
