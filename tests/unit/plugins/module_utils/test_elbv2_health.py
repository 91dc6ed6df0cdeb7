"""Reasons and hints of alb_target_health, from recorded DescribeTargetHealth answers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[4] / "plugins" / "module_utils" / "_elbv2_health.py"
spec = importlib.util.spec_from_file_location("_elbv2_health", PATH)
health = importlib.util.module_from_spec(spec)
spec.loader.exec_module(health)

RECORDED = json.loads((Path(__file__).parent / "fixtures" / "elbv2_target_health.json").read_text())
CHECK = health.health_check_of(RECORDED["target_group_vote"])


def targets(name):
    return health.targets_of(RECORDED[name]["TargetHealthDescriptions"], CHECK)


def by_id(items):
    return {t["id"]: t for t in items}


def test_health_check_settings_are_read_from_the_group():
    assert CHECK["path"] == "/"
    assert CHECK["matcher"] == "200"
    assert CHECK["port"] == "traffic-port"
    assert CHECK["timeout"] == 5


def test_wrong_path_hint_names_path_code_and_expected_matcher():
    t = by_id(targets("mixed"))["i-0b1"]
    assert t["reason"] == "Target.ResponseCodeMismatch"
    assert "wrong health check path" in t["hint"]
    assert "the health check (HTTP / on port 80) got 404 but the group expects 200" in t["hint"]


def test_timeout_hint_points_at_the_security_group():
    t = by_id(targets("mixed"))["i-0a2"]
    assert "security group" in t["hint"] and "port 80" in t["hint"] and "5 s" in t["hint"]


def test_healthy_targets_have_no_hint_and_targets_are_sorted():
    items = targets("mixed")
    assert [t["id"] for t in items] == ["i-0a2", "i-0b1", "i-0c3"]
    assert items[2]["hint"] is None


def test_refused_stopped_and_unused_have_distinct_hints():
    t = by_id(targets("refused_and_stopped"))
    assert "nothing listens" in t["i-0a2"]["hint"]
    assert "stopped or terminated" in t["i-0b1"]["hint"]
    assert "not used by any listener rule" in t["i-0c3"]["hint"]


def test_verdicts():
    assert health.group_verdict(targets("healthy")) == (True, False, None)
    ok, pending, problem = health.group_verdict(targets("initial"))
    assert (ok, pending) == (False, True)
    assert "Elb.InitialHealthChecking" in problem and "wait longer" in problem
    ok, pending, problem = health.group_verdict(targets("mixed"))
    assert (ok, pending) == (False, False)
    assert "i-0a2:80 is unhealthy (Target.Timeout: Request timed out)" in problem
    assert "i-0c3" not in problem


def test_empty_group_is_not_healthy():
    ok, pending, problem = health.group_verdict(targets("empty"), min_targets=1)
    assert not ok and not pending
    assert "0 target(s) registered, at least 1 expected" in problem
    assert health.group_verdict(targets("empty"), min_targets=0)[0]


def test_failure_message_lists_only_unhealthy_groups():
    groups = [
        {"name": "votingapp-vote", "healthy": False, "problem": "i-0b1:80 is unhealthy"},
        {"name": "votingapp-result", "healthy": True, "problem": None},
    ]
    msg = health.failure_message(groups, waited=30)
    assert msg == "targets not healthy after 30 s: target group votingapp-vote: i-0b1:80 is unhealthy"


@pytest.mark.parametrize(
    ("port_setting", "expected"),
    [("traffic-port", "port 80"), ("8080", "port 8080")],
)
def test_hint_uses_the_health_check_port(port_setting, expected):
    check = dict(CHECK, port=port_setting)
    assert expected in health.hint_for("Target.FailedHealthChecks", "Health checks failed", 80, check)


def test_unknown_reason_still_gets_a_hint():
    assert "Target.Something" in health.hint_for("Target.Something", None, 80, CHECK)


def test_mismatch_hint_uses_the_groups_own_path_not_this_apps():
    group = dict(RECORDED["target_group_vote"], HealthCheckPath="/healthz", HealthCheckProtocol="HTTPS")
    group["Matcher"] = {"HttpCode": "200-299"}
    check = health.health_check_of(group)
    hint = health.hint_for("Target.ResponseCodeMismatch", "Health checks failed with these codes: [503]", 8443, check)
    assert "HTTPS /healthz on port 8443" in hint and "got 503 but the group expects 200-299" in hint
    assert "/result/" not in hint and "Vote" not in hint


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("wait_delay", -1, "wait_delay must be at least 1 second, got -1"),
        ("wait_delay", 0, "wait_delay must be at least 1 second, got 0"),
        ("wait_timeout", -5, "wait_timeout must be 0 or more seconds, got -5"),
        ("min_targets", -1, "min_targets must be 0 or more, got -1"),
    ],
)
def test_wait_options_are_validated(option, value, message):
    params = {"wait_delay": 10, "wait_timeout": 300, "min_targets": 1}
    assert health.validate_options(params) == []
    assert health.validate_options(dict(params, **{option: value})) == [message]
