# -*- coding: utf-8 -*-
# Copyright: votingapp.stack contributors
# Apache License 2.0 (see LICENSE)
"""One retrying wrapper per ELBv2 API call used by this collection's modules.

Each wrapper retries throttling and transient errors with AWSRetry.jittered_backoff, so the
modules never call the client directly and a busy account slows them down instead of failing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# LoadBalancerNotFound etc. are not retried; these are what an eventually consistent ELBv2
# API answers right after a create, so they are worth another try.
_RETRY = AWSRetry.jittered_backoff(retries=10, catch_extra_error_codes=["RuleNotFound", "TargetGroupNotFound"])
_RETRY_READ = AWSRetry.jittered_backoff(retries=10)


@_RETRY_READ
def describe_listener(client, listener_arn):
    return client.describe_listeners(ListenerArns=[listener_arn])["Listeners"][0]


@_RETRY_READ
def _describe_page(client, operation, **kwargs):
    return getattr(client, operation)(**kwargs)


def _describe_all(client, operation, key, **kwargs):
    """Every item of a Marker-paginated ELBv2 Describe call, one retried call per page."""
    items = []
    while True:
        page = _describe_page(client, operation, **kwargs)
        items.extend(page.get(key, []))
        if not page.get("NextMarker"):
            return items
        kwargs["Marker"] = page["NextMarker"]


def describe_listeners(client, load_balancer_arn):
    return _describe_all(client, "describe_listeners", "Listeners", LoadBalancerArn=load_balancer_arn, PageSize=400)


def describe_rules(client, listener_arn):
    return _describe_all(client, "describe_rules", "Rules", ListenerArn=listener_arn, PageSize=100)


@_RETRY_READ
def _describe_tags_batch(client, arns):
    return client.describe_tags(ResourceArns=arns)["TagDescriptions"]


def describe_tags(client, arns):
    """arn -> tags dict; DescribeTags takes at most 20 ARNs per call."""
    result = {}
    arns = list(arns)
    for start in range(0, len(arns), 20):
        for desc in _describe_tags_batch(client, arns[start : start + 20]):
            result[desc["ResourceArn"]] = {t["Key"]: t["Value"] for t in desc.get("Tags", [])}
    return result


@_RETRY
def create_rule(client, **kwargs):
    return client.create_rule(**kwargs)["Rules"][0]


@_RETRY
def modify_rule(client, **kwargs):
    return client.modify_rule(**kwargs)["Rules"][0]


@_RETRY
def delete_rule(client, rule_arn):
    client.delete_rule(RuleArn=rule_arn)


@_RETRY
def set_rule_priorities(client, priorities):
    return client.set_rule_priorities(RulePriorities=[{"RuleArn": arn, "Priority": prio} for arn, prio in priorities])


@_RETRY
def add_tags(client, arn, tags):
    client.add_tags(ResourceArns=[arn], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])


@_RETRY_READ
def describe_target_groups(client, names=None, arns=None, load_balancer_arn=None):
    kwargs = {}
    if names:
        kwargs["Names"] = list(names)
    if arns:
        kwargs["TargetGroupArns"] = list(arns)
    if load_balancer_arn:
        kwargs["LoadBalancerArn"] = load_balancer_arn
    return client.describe_target_groups(**kwargs)["TargetGroups"]


@_RETRY_READ
def describe_target_health(client, target_group_arn):
    return client.describe_target_health(TargetGroupArn=target_group_arn)["TargetHealthDescriptions"]
