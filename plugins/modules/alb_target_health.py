#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: votingapp.stack contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: alb_target_health
short_description: Report, and optionally wait for, the health of ALB target groups with reasons and hints
version_added: 0.1.0
description:
  - Reads the health of every target in the given target groups, with AWS's reason code, its
    description and a hint naming the likely cause (wrong health check path, security group
    not allowing the load balancer, service down, target not registered, and so on), in terms of
    the target group's own health check settings (protocol, port, path, matcher).
  - With O(wait=true) it polls until every group has at least O(min_targets) targets and all of
    them are healthy, and fails with the reasons and hints when O(wait_timeout) runs out.
    It stops early when no target is still in an initial state and O(fail_fast=true).
author:
  - votingapp.stack maintainers (@votingapp)
options:
  target_groups:
    description: Target group names or ARNs.
    type: list
    elements: str
    required: true
  wait:
    description: Wait until all targets are healthy.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait at most (0 or more).
    type: int
    default: 300
  wait_delay:
    description: Seconds between two polls (at least 1).
    type: int
    default: 10
  min_targets:
    description: Minimum number of registered targets per group for the group to count as healthy (0 or more).
    type: int
    default: 1
  fail_fast:
    description:
      - While waiting, fail as soon as every unhealthy target has a definite failure reason
        (not C(Elb.InitialHealthChecking)) and that verdict was seen on two consecutive polls.
    type: bool
    default: false
extends_documentation_fragment:
  - votingapp.stack.aws
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Never changes anything.
seealso:
  - module: votingapp.stack.alb_listener_rules
  - module: community.aws.elb_target_group_info
"""

EXAMPLES = r"""
- name: Wait until vote and result targets pass their health checks
  votingapp.stack.alb_target_health:
    target_groups: [votingapp-vote, votingapp-result]
    wait: true
    wait_timeout: 600

- name: Report only
  votingapp.stack.alb_target_health:
    target_groups: [votingapp-vote]
  register: health
"""

RETURN = r"""
all_healthy:
  description: Whether every group has enough targets and all are healthy.
  returned: always
  type: bool
target_groups:
  description: One entry per requested group, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: Target group name.
      type: str
    arn:
      description: Target group ARN.
      type: str
    healthy:
      description: Whether the group counts as healthy.
      type: bool
    problem:
      description: Why not (each unhealthy target with reason and hint), or null.
      type: str
    health_check:
      description: The group's health check settings (protocol, port, path, matcher, interval, timeout, thresholds).
      type: dict
    targets:
      description: Targets sorted by id, with state, reason, description and hint.
      type: list
      elements: dict
  sample:
    - name: votingapp-vote
      arn: arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/votingapp-vote/1
      healthy: false
      problem: "i-0abc:80 is unhealthy (Target.ResponseCodeMismatch: ...) - hint: ..."
      health_check: {protocol: HTTP, port: traffic-port, path: /, matcher: "200"}
      targets:
        - id: i-0abc
          port: 80
          state: unhealthy
          reason: Target.ResponseCodeMismatch
          description: "Health checks failed with these codes: [404]"
          hint: "wrong health check path or matcher: ..."
waited:
  description: Seconds spent waiting.
  returned: always
  type: int
"""

import time

try:  # noqa: SIM105 (ansible-test wants the plain import guard)
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing library

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.votingapp.stack.plugins.module_utils import _elbv2_api as api
from ansible_collections.votingapp.stack.plugins.module_utils import _elbv2_health as health


def lookup_groups(module, client, refs):
    groups = []
    for ref in refs:
        try:
            if ref.startswith("arn:"):
                found = api.describe_target_groups(client, arns=[ref])
            else:
                found = api.describe_target_groups(client, names=[ref])
        except is_boto3_error_code("TargetGroupNotFound"):
            found = []
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg="Failed to look up target group %s" % ref)
        if not found:
            module.fail_json(msg="unknown target group %r: create it first or fix the name/ARN" % ref)
        groups.append(found[0])
    return groups


def poll(module, client, groups, min_targets):
    result = []
    for group in groups:
        check = health.health_check_of(group)
        try:
            descriptions = api.describe_target_health(client, group["TargetGroupArn"])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg="Failed to read target health of %s" % group["TargetGroupName"])
        targets = health.targets_of(descriptions, check)
        healthy, pending, problem = health.group_verdict(targets, min_targets)
        result.append(
            {
                "name": group["TargetGroupName"],
                "arn": group["TargetGroupArn"],
                "healthy": healthy,
                "pending": pending,
                "problem": problem,
                "health_check": check,
                "targets": targets,
            }
        )
    return result


def main():
    argument_spec = {
        "target_groups": {"type": "list", "elements": "str", "required": True},
        "wait": {"type": "bool", "default": False},
        "wait_timeout": {"type": "int", "default": 300},
        "wait_delay": {"type": "int", "default": 10},
        "min_targets": {"type": "int", "default": 1},
        "fail_fast": {"type": "bool", "default": False},
    }
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    client = module.client("elbv2")
    params = module.params
    problems = health.validate_options(params)
    if problems:
        module.fail_json(msg="; ".join(problems))
    groups = lookup_groups(module, client, params["target_groups"])

    start = time.monotonic()
    definite_failures = 0
    while True:
        status = poll(module, client, groups, params["min_targets"])
        all_healthy = all(g["healthy"] for g in status)
        waited = int(time.monotonic() - start)
        if all_healthy or not params["wait"]:
            break
        if params["fail_fast"] and not any(g["pending"] for g in status if not g["healthy"]):
            definite_failures += 1
            if definite_failures >= 2:
                break
        else:
            definite_failures = 0
        if waited + params["wait_delay"] > params["wait_timeout"]:
            break
        time.sleep(params["wait_delay"])

    for group in status:
        group.pop("pending")
    result = {"changed": False, "all_healthy": all_healthy, "target_groups": status, "waited": waited}
    if params["wait"] and not all_healthy:
        module.fail_json(msg=health.failure_message(status, waited), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
