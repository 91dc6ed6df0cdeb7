# -*- coding: utf-8 -*-
# Copyright: votingapp.stack contributors
# Apache License 2.0 (see LICENSE)
"""Pure functions behind votingapp.stack.alb_target_health: turn DescribeTargetHealth answers
into per-target reasons and a hint that says what to fix. No AWS calls; unit-tested with
recorded API responses (moto never runs health checks, so it cannot produce these states)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The two states that are not failures: the target is fine, or AWS is still deciding.
HEALTHY = "healthy"
PENDING_REASONS = ("Elb.RegistrationInProgress", "Elb.InitialHealthChecking")


def health_check_of(target_group):
    """DescribeTargetGroups entry -> the health check settings the hints talk about."""
    matcher = target_group.get("Matcher") or {}
    return {
        "protocol": target_group.get("HealthCheckProtocol"),
        "port": target_group.get("HealthCheckPort") or "traffic-port",
        "path": target_group.get("HealthCheckPath"),
        "matcher": matcher.get("HttpCode") or matcher.get("GrpcCode"),
        "interval": target_group.get("HealthCheckIntervalSeconds"),
        "timeout": target_group.get("HealthCheckTimeoutSeconds"),
        "healthy_threshold": target_group.get("HealthyThresholdCount"),
        "unhealthy_threshold": target_group.get("UnhealthyThresholdCount"),
    }


def validate_options(params):
    """Problems with the wait options, each naming the option; [] when fine."""
    problems = []
    if params["wait_delay"] < 1:
        # 0 would poll DescribeTargetHealth in a tight loop; a negative value cannot be slept.
        problems.append("wait_delay must be at least 1 second, got %d" % params["wait_delay"])
    if params["wait_timeout"] < 0:
        problems.append("wait_timeout must be 0 or more seconds, got %d" % params["wait_timeout"])
    if params["min_targets"] < 0:
        problems.append("min_targets must be 0 or more, got %d" % params["min_targets"])
    return problems


def hint_for(reason, description, target_port, check):
    """What a person should look at for this reason code, in the group's own terms (its health
    check protocol, port, path and matcher as DescribeTargetGroups reports them)."""
    port = check["port"]
    if port in (None, "traffic-port"):
        port = target_port
    request = " ".join(str(part) for part in (check.get("protocol"), check.get("path")) if part)
    if reason is None:
        return None
    if reason in PENDING_REASONS:
        return (
            "still being checked: the first verdict takes about interval x healthy threshold (%s s x %s); wait longer"
            % (check.get("interval"), check.get("healthy_threshold"))
        )
    if reason == "Target.ResponseCodeMismatch":
        return (
            "wrong health check path or matcher: the health check (%s on port %s) got %s but the group expects %s:"
            " make the service answer %s there (mind its URL prefix), or change the target group's health check"
            " path or matcher"
            % (
                request or "as configured",
                port,
                _code_in(description) or "another code",
                check.get("matcher"),
                check.get("matcher"),
            )
        )
    if reason == "Target.Timeout":
        return (
            "no answer on port %s within %s s: the target's security group probably does not allow port %s from"
            " the ALB's security group (or a host firewall drops it); a stopped service answers 'refused', not a"
            " timeout" % (port, check.get("timeout"), port)
        )
    if reason == "Target.FailedHealthChecks":
        return (
            "the connection to port %s failed: nothing listens there (service or container down, or published on"
            " another port); look at the service on the target" % port
        )
    if reason == "Target.NotRegistered":
        return "the target is not registered in this target group: register it (the alb role does, from the inventory)"
    if reason == "Target.NotInUse":
        return (
            "the target group is not used by any listener rule or default action, or the target's availability"
            " zone is not enabled on the load balancer"
        )
    if reason == "Target.InvalidState":
        return "the instance is stopped or terminated: start it, or deregister it"
    if reason == "Target.DeregistrationInProgress":
        return "the target is being deregistered (connection draining)"
    if reason == "Target.IpUnusable":
        return "the target's IP address is in use by a load balancer or unusable"
    if reason == "Target.HealthCheckDisabled":
        return "health checks are disabled on this target group"
    if reason == "Elb.InternalError":
        return "AWS reported an internal error for the health check: retry, and check the AWS health dashboard"
    return "AWS reason %s: see the target group's health check settings" % reason


def _code_in(description):
    """'Health checks failed with these codes: [404]' -> '404'."""
    if not description or "[" not in description:
        return None
    return description[description.index("[") + 1 : description.rindex("]")] or None


def targets_of(descriptions, check):
    """DescribeTargetHealth TargetHealthDescriptions -> list of per-target dicts, sorted by id."""
    targets = []
    for desc in descriptions or []:
        target = desc.get("Target") or {}
        health = desc.get("TargetHealth") or {}
        state = health.get("State")
        reason = health.get("Reason")
        hint = None if state == HEALTHY else hint_for(reason, health.get("Description"), target.get("Port"), check)
        targets.append(
            {
                "id": target.get("Id"),
                "port": target.get("Port"),
                "availability_zone": target.get("AvailabilityZone"),
                "state": state,
                "reason": reason,
                "description": health.get("Description"),
                "hint": hint,
            }
        )
    return sorted(targets, key=lambda t: (str(t["id"]), t["port"] or 0))


def group_verdict(targets, min_targets=1):
    """(healthy, pending, problem): pending means 'keep waiting', problem is None when healthy."""
    if len(targets) < min_targets:
        return (
            False,
            False,
            "%d target(s) registered, at least %d expected: register the hosts (inventory groups) first"
            % (len(targets), min_targets),
        )
    bad = [t for t in targets if t["state"] != HEALTHY]
    if not bad:
        return True, False, None
    pending = all(t["reason"] in PENDING_REASONS or t["state"] == "initial" for t in bad)
    return False, pending, "; ".join(describe_target(t) for t in bad)


def describe_target(target):
    text = "%s:%s is %s" % (target["id"], target["port"], target["state"])
    if target["reason"]:
        text += " (%s%s)" % (target["reason"], ": " + target["description"] if target["description"] else "")
    if target["hint"]:
        text += " - hint: " + target["hint"]
    return text


def failure_message(groups, waited=None):
    """Message for a failed wait: every unhealthy group with its targets' reasons and hints."""
    parts = []
    for group in groups:
        if group["healthy"]:
            continue
        parts.append("target group %s: %s" % (group["name"], group["problem"]))
    prefix = "targets not healthy" + (" after %d s" % waited if waited is not None else "")
    return prefix + ": " + " | ".join(parts)
