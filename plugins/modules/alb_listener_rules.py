#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: votingapp.stack contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: alb_listener_rules
short_description: Declarative rules for one Application Load Balancer listener
version_added: 0.1.0
description:
  - Manages the rules of one ALB listener from a list.
  - Rules are matched to the existing ones by their O(rules[].name) tag when given, otherwise by
    their conditions, never by priority, so inserting a rule does not rewrite its neighbours.
  - B(List order is evaluation order.) The rules of O(rules) get increasing priorities in the order
    they are listed, so the first listed rule that matches a request is the one AWS applies.
    A rule is inserted where it is listed, moving as few rules as possible - existing rules keep their
    priority whenever it already fits the order and leaves room for the rules listed between them;
    the others, and new rules, take the lowest free priority after the rule listed before them.
    O(rules[].priority) pins a rule; pinned priorities must increase in list order.
  - Rules this task does not list (O(purge=false)) keep their priorities; listed rules are placed
    around them.
  - A listed rule whose conditions are covered by a rule listed before it (for example V(/vote*)
    listed before V(/vote*) plus an C(X-Canary) header) could never match, so the task fails
    naming both before any change; when the covering or covered rule is one this task does not
    manage, it warns instead. The check is conservative (wildcards, CIDR blocks, header and
    query-string conditions), so it never reports a shadow that is not one.
  - The whole request is validated before the first write, and every problem is reported at once,
    naming the rule (C(rules[N]) and its name) and the field. Checked up front - empty condition
    lists, at most 5 condition values per rule (all conditions together), upper-case HTTP methods,
    CIDR syntax, value lengths, 1-5 target groups per forward with weights 0-999, stickiness
    1-604800 s, fixed-response codes 2XX/4XX/5XX, redirect protocol, port and path, priorities
    1-50000, that each rule has conditions and an action, that target groups exist, and that the
    load balancer stays within O(rules_quota) rules over all its listeners.
  - Updates never leave a moment with two rules on one priority (moves go through
    SetRulePriorities in collision-free steps) or a path without its rule (a replacement is
    created before the rule it replaces is deleted).
  - Existing C(authenticate-oidc) and C(authenticate-cognito) actions of a rule are not managed
    here but are kept in front of its action when the rule is modified (the OIDC client secret
    stays the stored one).
  - The listener and its default action are not managed here; create them with
    M(amazon.aws.elb_application_lb) without C(Rules).
author:
  - votingapp.stack maintainers (@votingapp)
options:
  listener_arn:
    description: ARN of the listener whose rules are managed.
    type: str
    required: true
  state:
    description:
      - V(present) creates or updates the listed rules.
      - V(absent) deletes the listed rules (matched by name or conditions; actions are ignored).
    type: str
    choices: [present, absent]
    default: present
  purge:
    description:
      - Delete rules of the listener that are not in O(rules). The default rule is never touched.
      - Without it, rules this task does not list are left alone, so several tasks can each
        manage a part of one listener.
    type: bool
    default: false
  rules_quota:
    description:
      - The account's quota of rules per Application Load Balancer (over all its listeners, default
        rules not counted). A run that would go above it fails before any change.
      - The AWS default is 100; raise this only if AWS raised your quota.
    type: int
    default: 100
  rules:
    description: The rules, in evaluation order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Identity of the rule, stored in its C(Name) tag. Lets a rule change its conditions
            without being replaced.
        type: str
      priority:
        description:
          - Explicit priority (1-50000). Two rules with the same priority are an error, and so is a
            priority that does not increase in list order.
        type: int
      conditions:
        description: What the rule matches. At least one condition is needed with O(state=present).
        type: dict
        suboptions:
          path_pattern:
            description: Path patterns, for example V(/vote*).
            type: list
            elements: str
          host_header:
            description: Host names.
            type: list
            elements: str
          http_request_method:
            description: HTTP methods.
            type: list
            elements: str
          source_ip:
            description: Client CIDR blocks.
            type: list
            elements: str
          http_header:
            description: Header conditions (all must match).
            type: list
            elements: dict
            suboptions:
              name:
                description: Header name.
                type: str
                required: true
              values:
                description: Accepted values (wildcards allowed).
                type: list
                elements: str
                required: true
          query_string:
            description:
              - Query-string conditions; each entry is one condition and all must match (AND).
              - An entry is one pair (O(rules[].conditions.query_string[].key),
                O(rules[].conditions.query_string[].value)) or a list of pairs of which any may
                match (O(rules[].conditions.query_string[].values)).
            type: list
            elements: dict
            suboptions:
              key:
                description: Key; omit to match the value alone.
                type: str
              value:
                description: Value.
                type: str
              values:
                description: Pairs of which any may match (OR), instead of one key/value.
                type: list
                elements: dict
                suboptions:
                  key:
                    description: Key; omit to match the value alone.
                    type: str
                  value:
                    description: Value.
                    type: str
                    required: true
      target_group:
        description: Forward to this one target group (name or ARN). Shortcut for O(rules[].forward).
        type: str
      forward:
        description: Forward to one or more weighted target groups.
        type: dict
        suboptions:
          target_groups:
            description: Target groups and weights.
            type: list
            elements: dict
            required: true
            suboptions:
              name:
                description: Target group name.
                type: str
              arn:
                description: Target group ARN.
                type: str
              weight:
                description: Weight (0-999).
                type: int
                default: 1
          stickiness_duration:
            description: Enable target group stickiness for this many seconds.
            type: int
      redirect:
        description: Redirect the request.
        type: dict
        suboptions:
          protocol:
            description: V(HTTP), V(HTTPS) or V(#{protocol}) (the default, keep).
            type: str
          host:
            description: Host, default keeps it.
            type: str
          port:
            description: Port, default keeps it.
            type: str
          path:
            description: Path, default keeps it.
            type: str
          query:
            description: Query, default keeps it.
            type: str
          status_code:
            description: Redirect status.
            type: str
            choices: [HTTP_301, HTTP_302]
            required: true
      fixed_response:
        description: Answer with a fixed response.
        type: dict
        suboptions:
          status_code:
            description: HTTP status code, for example V(404).
            type: str
            required: true
          content_type:
            description: Content type.
            type: str
            choices: [text/plain, text/css, text/html, application/javascript, application/json]
          message_body:
            description: Body.
            type: str
extends_documentation_fragment:
  - votingapp.stack.aws
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
    description: Reports the rules it would create, change, move or delete.
  diff_mode:
    support: full
    description: C(before) and C(after) list the listener's rules sorted by priority.
  idempotent:
    support: full
    description: A second run with the same input reports no change.
seealso:
  - module: votingapp.stack.alb_target_health
  - module: amazon.aws.elb_application_lb
"""

EXAMPLES = r"""
- name: Route /vote and /result, leave other rules alone
  votingapp.stack.alb_listener_rules:
    listener_arn: "{{ listener_arn }}"
    rules:
      - name: vote
        conditions:
          path_pattern: ["/vote*"]
        target_group: votingapp-vote
      - name: result
        conditions:
          path_pattern: ["/result*"]
        target_group: votingapp-result

- name: A header canary goes before the rule that covers it (list order is evaluation order)
  votingapp.stack.alb_listener_rules:
    listener_arn: "{{ listener_arn }}"
    rules:
      - name: vote-canary
        conditions:
          path_pattern: ["/vote*"]
          http_header: [{name: X-Canary, values: ["1"]}]
        target_group: votingapp-vote-canary
      - name: vote
        conditions:
          path_pattern: ["/vote*"]
        target_group: votingapp-vote

- name: Two query-string conditions (AND), the second with two accepted pairs (OR)
  votingapp.stack.alb_listener_rules:
    listener_arn: "{{ listener_arn }}"
    rules:
      - name: debug
        conditions:
          path_pattern: ["/result*"]
          query_string:
            - {key: debug, value: "1"}
            - values: [{key: user, value: admin}, {key: user, value: ops}]
        fixed_response:
          status_code: "403"

- name: Canary 10% of /vote to a second target group
  votingapp.stack.alb_listener_rules:
    listener_arn: "{{ listener_arn }}"
    rules:
      - name: vote
        priority: 10
        conditions:
          path_pattern: ["/vote*"]
        forward:
          target_groups:
            - name: votingapp-vote
              weight: 9
            - name: votingapp-vote-canary
              weight: 1
          stickiness_duration: 300

- name: Remove one rule
  votingapp.stack.alb_listener_rules:
    listener_arn: "{{ listener_arn }}"
    state: absent
    rules:
      - name: old-admin
"""

RETURN = r"""
rules:
  description: Every non-default rule of the listener after the run (predicted in check mode), sorted by priority.
  returned: always
  type: list
  elements: dict
  contains:
    rule_arn:
      description: Rule ARN (null for a rule check mode would create).
      type: str
    priority:
      description: Priority.
      type: int
    name:
      description: Value of the C(Name) tag, if any.
      type: str
    conditions:
      description: Conditions in the module's option format.
      type: dict
    action:
      description: The action, with target groups resolved to ARNs.
      type: dict
  sample:
    - rule_arn: arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/x/1/2/3
      priority: 1
      name: vote
      conditions: {path_pattern: ["/vote*"]}
      action:
        type: forward
        target_groups: [{arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/vote/1", weight: 1}]
        stickiness: {enabled: false, duration: null}
operations:
  description:
    - The API calls made (or, in check mode, that would be made), in order.
    - When a run fails partway, the calls that completed before the failure (also returned on failure).
  returned: always
  type: list
  elements: str
  sample: ["create_rule priority=2 rule 'result'", "set_rule_priorities 1:rule 'vote'"]
"""

try:  # noqa: SIM105 (ansible-test wants the plain import guard)
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports the missing library

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.votingapp.stack.plugins.module_utils import _elbv2_api as api
from ansible_collections.votingapp.stack.plugins.module_utils import _elbv2_rules as rules_lib

CONDITIONS_SPEC = {
    "path_pattern": {"type": "list", "elements": "str"},
    "host_header": {"type": "list", "elements": "str"},
    "http_request_method": {"type": "list", "elements": "str"},
    "source_ip": {"type": "list", "elements": "str"},
    "http_header": {
        "type": "list",
        "elements": "dict",
        "options": {
            "name": {"type": "str", "required": True},
            "values": {"type": "list", "elements": "str", "required": True},
        },
    },
    "query_string": {
        "type": "list",
        "elements": "dict",
        "options": {
            "key": {"type": "str", "no_log": False},
            "value": {"type": "str"},
            "values": {
                "type": "list",
                "elements": "dict",
                "options": {"key": {"type": "str", "no_log": False}, "value": {"type": "str", "required": True}},
            },
        },
        "mutually_exclusive": [["value", "values"], ["key", "values"]],
        "required_one_of": [["value", "values"]],
    },
}

RULE_SPEC = {
    "name": {"type": "str"},
    "priority": {"type": "int"},
    "conditions": {"type": "dict", "options": CONDITIONS_SPEC},
    "target_group": {"type": "str"},
    "forward": {
        "type": "dict",
        "options": {
            "target_groups": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str"},
                    "arn": {"type": "str"},
                    "weight": {"type": "int", "default": 1},
                },
                "mutually_exclusive": [["name", "arn"]],
                "required_one_of": [["name", "arn"]],
            },
            "stickiness_duration": {"type": "int"},
        },
    },
    "redirect": {
        "type": "dict",
        "options": {
            "protocol": {"type": "str"},
            "host": {"type": "str"},
            "port": {"type": "str"},
            "path": {"type": "str"},
            "query": {"type": "str"},
            "status_code": {"type": "str", "required": True, "choices": ["HTTP_301", "HTTP_302"]},
        },
    },
    "fixed_response": {
        "type": "dict",
        "options": {
            "status_code": {"type": "str", "required": True},
            "content_type": {
                "type": "str",
                "choices": ["text/plain", "text/css", "text/html", "application/javascript", "application/json"],
            },
            "message_body": {"type": "str"},
        },
    },
}


class TargetGroupResolver:
    """Name or ARN -> ARN, one lookup per distinct reference; unknown ones fail early by name."""

    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.cache = {}

    def __call__(self, ref):
        if ref in self.cache:
            return self.cache[ref]
        try:
            if ref.startswith("arn:"):
                found = api.describe_target_groups(self.client, arns=[ref])
            else:
                found = api.describe_target_groups(self.client, names=[ref])
        except is_boto3_error_code("TargetGroupNotFound"):
            found = []
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
            self.module.fail_json_aws(e, msg="Failed to look up target group %s" % ref)
        if not found:
            raise rules_lib.RuleError("unknown target group %r: create it first or fix the name/ARN" % ref)
        self.cache[ref] = found[0]["TargetGroupArn"]
        return self.cache[ref]


def read_rules(client, listener_arn):
    raw = [r for r in api.describe_rules(client, listener_arn) if not r.get("IsDefault")]
    tags = api.describe_tags(client, [r["RuleArn"] for r in raw]) if raw else {}
    return rules_lib.sort_rules([rules_lib.rule_from_api(r, tags.get(r["RuleArn"])) for r in raw])


def other_listener_rules(client, listener):
    """Non-default rules on the load balancer's other listeners: they share its rules quota."""
    count = 0
    for other in api.describe_listeners(client, listener["LoadBalancerArn"]):
        if other["ListenerArn"] != listener["ListenerArn"]:
            count += sum(1 for r in api.describe_rules(client, other["ListenerArn"]) if not r.get("IsDefault"))
    return count


def apply_plan(module, client, listener_arn, existing, plan, ops):
    """Run the plan in an order that keeps every path routed and every priority unique.

    Each call is appended to ``ops`` once it has succeeded, so after a failure ``ops`` says
    exactly what was already changed.
    """
    check = module.check_mode
    current = {r["arn"]: r["priority"] for r in existing}
    labels = {r["arn"]: rules_lib.describe_rule(r) for r in existing}
    moves = dict(plan["moves"])

    for arn, rule in plan["modify"]:
        if not check:
            api.modify_rule(
                client,
                RuleArn=arn,
                Conditions=rules_lib.conditions_to_api(rule["conditions"]),
                Actions=rules_lib.action_to_api(rule["action"]),
            )
        ops.append("modify_rule %s" % labels[arn])
    for arn, name in plan["tag"]:
        if not check:
            api.add_tags(client, arn, {rules_lib.NAME_TAG: name})
        ops.append("add_tags Name=%s %s" % (name, labels[arn]))

    for rule in plan["create"]:
        label = rules_lib.describe_rule(rule)
        # A priority still held (by a rule that moves away or is being replaced) is taken later.
        if rule["priority"] in current.values():
            prio = rules_lib.temporary_priority(
                set(current.values()) | set(moves.values()) | {r["priority"] for r in plan["create"]}
            )
        else:
            prio = rule["priority"]
        arn = "(new %s)" % label
        if not check:
            kwargs = {
                "ListenerArn": listener_arn,
                "Priority": prio,
                "Conditions": rules_lib.conditions_to_api(rule["conditions"]),
                "Actions": rules_lib.action_to_api(rule["action"]),
            }
            if rule["name"]:
                kwargs["Tags"] = [{"Key": rules_lib.NAME_TAG, "Value": rule["name"]}]
            arn = api.create_rule(client, **kwargs)["RuleArn"]
        ops.append("create_rule priority=%d %s" % (prio, label))
        current[arn] = prio
        labels[arn] = label
        if prio != rule["priority"]:
            moves[arn] = rule["priority"]

    # Deleted rules go after their replacements exist and before priorities are settled, so
    # the priorities they free can be taken.
    for rule in plan["delete"]:
        if not check:
            api.delete_rule(client, rule["arn"])
        ops.append("delete_rule priority=%d %s" % (rule["priority"], labels[rule["arn"]]))
        current.pop(rule["arn"], None)

    for batch in rules_lib.order_moves(current, moves):
        if not check:
            api.set_rule_priorities(client, batch)
        ops.append("set_rule_priorities " + ", ".join("%d:%s" % (prio, labels[arn]) for arn, prio in batch))
        for arn, prio in batch:
            current[arn] = prio


def main():
    argument_spec = {
        "listener_arn": {"type": "str", "required": True},
        "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
        "purge": {"type": "bool", "default": False},
        "rules_quota": {"type": "int", "default": rules_lib.DEFAULT_RULES_QUOTA},
        "rules": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": RULE_SPEC,
            "mutually_exclusive": [["target_group", "forward", "redirect", "fixed_response"]],
        },
    }
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    client = module.client("elbv2")
    listener_arn = module.params["listener_arn"]
    state = module.params["state"]

    try:
        listener = api.describe_listener(client, listener_arn)
    except is_boto3_error_code("ListenerNotFound"):
        module.fail_json(msg="listener %s does not exist" % listener_arn)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg="Failed to describe listener %s" % listener_arn)

    resolver = TargetGroupResolver(module, client)
    # Everything is read and checked before the first write.
    try:
        desired = rules_lib.desired_rules(module.params["rules"], resolver, state=state)
        existing = read_rules(client, listener_arn)
        plan = rules_lib.plan_rules(
            existing,
            desired,
            purge=module.params["purge"],
            state=state,
            other_rules=other_listener_rules(client, listener) if state == "present" else 0,
            rules_quota=module.params["rules_quota"],
        )
    except rules_lib.RuleError as e:
        module.fail_json(msg=str(e), operations=[])
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg="Failed to read the rules of listener %s" % listener_arn, operations=[])
    for warning in plan["warnings"]:
        module.warn(warning)

    changed = rules_lib.plan_changed(plan)
    ops = []
    try:
        apply_plan(module, client, listener_arn, existing, plan, ops)
        after = read_rules(client, listener_arn) if changed and not module.check_mode else plan["after"]
    except (rules_lib.RuleError, botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        msg = "Failed to update the rules of listener %s after %d completed call(s) (see operations): %s" % (
            listener_arn,
            len(ops),
            "; ".join(ops) or "nothing was changed",
        )
        if isinstance(e, rules_lib.RuleError):
            module.fail_json(msg="%s: %s" % (msg, e), operations=ops, changed=bool(ops))
        module.fail_json_aws(e, msg=msg, operations=ops, changed=bool(ops))

    result = {
        "changed": changed,
        "rules": [rules_lib.rule_for_output(r) for r in after],
        "operations": ops,
    }
    if module._diff:
        result["diff"] = {
            "before": {"rules": [rules_lib.rule_for_output(r) for r in existing]},
            "after": {"rules": [rules_lib.rule_for_output(r) for r in plan["after"]]},
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
