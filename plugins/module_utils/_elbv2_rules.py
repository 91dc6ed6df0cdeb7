# -*- coding: utf-8 -*-
# Copyright: votingapp.stack contributors
# Apache License 2.0 (see LICENSE)
"""Pure functions behind votingapp.stack.alb_listener_rules: no AWS calls, unit-tested directly.

Rules are compared in a canonical form (snake_case, sorted values, AWS defaults filled in) so
that the answer of DescribeRules, which moto and AWS shape differently (legacy ``Values`` versus
``PathPatternConfig``, ``TargetGroupArn`` versus ``ForwardConfig``), compares equal to what
the user asked for.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import bisect
import copy
import ipaddress
import re

MIN_PRIORITY = 1
MAX_PRIORITY = 50000
NAME_TAG = "Name"
# AWS quotas checked before the first write (Elastic Load Balancing quotas for Application Load
# Balancers). Rules per load balancer can be raised by AWS support, hence the module option.
MAX_CONDITION_VALUES = 5
MAX_TARGET_GROUPS = 5
DEFAULT_RULES_QUOTA = 100
AUTHENTICATE_TYPES = ("authenticate-oidc", "authenticate-cognito")
ACTION_OPTIONS = ("target_group", "forward", "redirect", "fixed_response")

# field name in the module <-> ELBv2 condition field and its *Config key
CONDITION_FIELDS = {
    "path_pattern": ("path-pattern", "PathPatternConfig"),
    "host_header": ("host-header", "HostHeaderConfig"),
    "http_request_method": ("http-request-method", "HttpRequestMethodConfig"),
    "source_ip": ("source-ip", "SourceIpConfig"),
    "http_header": ("http-header", "HttpHeaderConfig"),
    "query_string": ("query-string", "QueryStringConfig"),
}
_FIELD_TO_OPTION = {v[0]: k for k, v in CONDITION_FIELDS.items()}

REDIRECT_DEFAULTS = {
    "protocol": "#{protocol}",
    "host": "#{host}",
    "port": "#{port}",
    "path": "/#{path}",
    "query": "#{query}",
}


class RuleError(Exception):
    """Bad input, reported to the user as is."""


# --- canonical form ---------------------------------------------------------------------------


def canonical_conditions(conditions):
    """Module-style conditions dict -> canonical dict (only set fields, sorted values)."""
    result = {}
    for option in CONDITION_FIELDS:
        value = (conditions or {}).get(option)
        if value is None:
            continue
        if option == "http_header":
            headers = [{"name": h["name"], "values": sorted(h["values"])} for h in value]
            result[option] = sorted(headers, key=lambda h: (h["name"].lower(), h["values"]))
        elif option == "query_string":
            # One entry = one query-string condition (entries AND), its pairs OR.
            groups = [{"values": _query_pairs(q)} for q in value]
            result[option] = sorted(groups, key=lambda g: [(q["key"] or "", q["value"]) for q in g["values"]])
        else:
            result[option] = sorted(value)
    return result


def _query_pairs(entry):
    """A query_string entry: a single ``key``/``value`` pair, or ``values``, a list of pairs."""
    pairs = entry["values"] if entry.get("values") is not None else [entry]
    pairs = [{"key": q.get("key"), "value": q["value"]} for q in pairs]
    return sorted(pairs, key=lambda q: (q["key"] or "", q["value"]))


def conditions_from_api(api_conditions):
    """ELBv2 Conditions list -> canonical dict."""
    raw = {}
    for cond in api_conditions or []:
        field = cond["Field"]
        option = _FIELD_TO_OPTION.get(field)
        if option is None:
            raise RuleError("unsupported condition field %r in an existing rule" % field)
        config = cond.get(CONDITION_FIELDS[option][1]) or {}
        if option == "http_header":
            raw.setdefault(option, []).append(
                {"name": config.get("HttpHeaderName"), "values": list(config.get("Values") or [])}
            )
        elif option == "query_string":
            pairs = [{"key": pair.get("Key"), "value": pair.get("Value")} for pair in config.get("Values") or []]
            raw.setdefault(option, []).append({"values": pairs})
        else:
            values = config.get("Values") or cond.get("Values") or []
            raw.setdefault(option, []).extend(values)
    return canonical_conditions(raw)


def conditions_to_api(canonical):
    """Canonical conditions -> ELBv2 Conditions list (one entry per header/query-string group)."""
    result = []
    for option, (field, config_key) in CONDITION_FIELDS.items():
        if option not in canonical:
            continue
        value = canonical[option]
        if option == "http_header":
            for header in value:
                config = {"HttpHeaderName": header["name"], "Values": header["values"]}
                result.append({"Field": field, config_key: config})
        elif option == "query_string":
            for group in value:
                pairs = []
                for pair in group["values"]:
                    item = {"Value": pair["value"]}
                    if pair.get("key") is not None:
                        item["Key"] = pair["key"]
                    pairs.append(item)
                result.append({"Field": field, config_key: {"Values": pairs}})
        else:
            result.append({"Field": field, config_key: {"Values": list(value)}})
    return result


def canonical_action(action, tg_arn_of=None):
    """Module-style action (one of target_group/forward/redirect/fixed_response) -> canonical.

    ``tg_arn_of`` maps a target group name or ARN to its ARN; it raises RuleError for unknown ones.
    """
    resolve = tg_arn_of or (lambda ref: ref)
    if action.get("target_group"):
        return {
            "type": "forward",
            "target_groups": [{"arn": resolve(action["target_group"]), "weight": 1}],
            "stickiness": {"enabled": False, "duration": None},
        }
    if action.get("forward"):
        fwd = action["forward"]
        groups = []
        for tg in fwd.get("target_groups") or []:
            ref = tg.get("arn") or tg.get("name")
            if not ref:
                raise RuleError("forward.target_groups entries need a name or an arn")
            groups.append({"arn": resolve(ref), "weight": 1 if tg.get("weight") is None else tg["weight"]})
        if not groups:
            raise RuleError("forward needs at least one entry in target_groups")
        duration = fwd.get("stickiness_duration")
        return {
            "type": "forward",
            "target_groups": sorted(groups, key=lambda g: g["arn"]),
            "stickiness": {"enabled": bool(duration), "duration": duration or None},
        }
    if action.get("redirect"):
        red = action["redirect"]
        result = {"type": "redirect", "status_code": red["status_code"]}
        for key, default in REDIRECT_DEFAULTS.items():
            result[key] = red.get(key) if red.get(key) is not None else default
        return result
    if action.get("fixed_response"):
        fix = action["fixed_response"]
        return {
            "type": "fixed_response",
            "status_code": str(fix["status_code"]),
            "content_type": fix.get("content_type") or None,
            "message_body": fix.get("message_body") or "",
        }
    raise RuleError("a rule needs one of target_group, forward, redirect or fixed_response")


def _authenticate_from_api(action):
    """An authenticate-* action as read, minus what must not be compared, returned or sent back."""
    config_key = "AuthenticateOidcConfig" if action["Type"] == "authenticate-oidc" else "AuthenticateCognitoConfig"
    config = copy.deepcopy(action.get(config_key) or {})
    # AWS never returns the OIDC client secret (moto does); writing the rule back keeps the stored one.
    config.pop("ClientSecret", None)
    config.pop("UseExistingClientSecret", None)
    return {"type": action["Type"], "config": config}


def action_from_api(api_actions):
    """ELBv2 Actions list -> canonical action: the terminal action, plus any authenticate-* actions
    before it under ``authenticate`` (kept so that a modify writes them back instead of dropping them)."""
    ordered = sorted(api_actions or [], key=lambda a: a.get("Order") or 0)
    actions = [a for a in ordered if a["Type"] in ("forward", "redirect", "fixed-response")]
    authenticate = [_authenticate_from_api(a) for a in ordered if a["Type"] in AUTHENTICATE_TYPES]
    if len(actions) != 1 or len(authenticate) + 1 != len(ordered):
        return {"type": "unsupported", "raw": api_actions}
    result = _terminal_action_from_api(actions[0])
    if authenticate:
        result["authenticate"] = authenticate
    return result


def _terminal_action_from_api(api):
    if api["Type"] == "forward":
        fwd = api.get("ForwardConfig") or {}
        groups = [
            {"arn": tg["TargetGroupArn"], "weight": 1 if tg.get("Weight") is None else tg["Weight"]}
            for tg in fwd.get("TargetGroups") or []
        ]
        if not groups and api.get("TargetGroupArn"):
            groups = [{"arn": api["TargetGroupArn"], "weight": 1}]
        sticky = fwd.get("TargetGroupStickinessConfig") or {}
        enabled = bool(sticky.get("Enabled"))
        return {
            "type": "forward",
            "target_groups": sorted(groups, key=lambda g: g["arn"]),
            "stickiness": {"enabled": enabled, "duration": sticky.get("DurationSeconds") if enabled else None},
        }
    if api["Type"] == "redirect":
        cfg = api.get("RedirectConfig") or {}
        result = {"type": "redirect", "status_code": cfg.get("StatusCode")}
        for key, default in REDIRECT_DEFAULTS.items():
            # An absent key means "keep" (moto omits them); an empty string (query "") is a real value.
            value = cfg.get(key.capitalize())
            result[key] = default if value is None else value
        return result
    cfg = api.get("FixedResponseConfig") or {}
    return {
        "type": "fixed_response",
        "status_code": str(cfg.get("StatusCode")),
        "content_type": cfg.get("ContentType") or None,
        "message_body": cfg.get("MessageBody") or "",
    }


def _authenticate_to_api(auth, order):
    config = copy.deepcopy(auth["config"])
    if auth["type"] == "authenticate-oidc":
        config["UseExistingClientSecret"] = True
        return {"Type": auth["type"], "Order": order, "AuthenticateOidcConfig": config}
    return {"Type": auth["type"], "Order": order, "AuthenticateCognitoConfig": config}


def action_to_api(action):
    """Canonical action -> ELBv2 Actions list (authenticate-* actions first, then the terminal one)."""
    result = [_authenticate_to_api(a, i + 1) for i, a in enumerate(action.get("authenticate") or [])]
    order = len(result) + 1
    if action["type"] == "forward":
        config = {
            "TargetGroups": [{"TargetGroupArn": g["arn"], "Weight": g["weight"]} for g in action["target_groups"]]
        }
        sticky = action.get("stickiness") or {}
        if sticky.get("enabled"):
            config["TargetGroupStickinessConfig"] = {"Enabled": True, "DurationSeconds": sticky["duration"]}
        else:
            config["TargetGroupStickinessConfig"] = {"Enabled": False}
        return [*result, {"Type": "forward", "Order": order, "ForwardConfig": config}]
    if action["type"] == "redirect":
        config = {"StatusCode": action["status_code"]}
        for key in REDIRECT_DEFAULTS:
            config[key.capitalize()] = action[key]
        return [*result, {"Type": "redirect", "Order": order, "RedirectConfig": config}]
    if action["type"] == "fixed_response":
        config = {"StatusCode": action["status_code"]}
        if action.get("content_type"):
            config["ContentType"] = action["content_type"]
        if action.get("message_body"):
            config["MessageBody"] = action["message_body"]
        return [*result, {"Type": "fixed-response", "Order": order, "FixedResponseConfig": config}]
    raise RuleError("cannot write an action of type %r" % action["type"])


def rule_from_api(api_rule, tags=None):
    """DescribeRules entry (+ its tags dict) -> canonical rule."""
    return {
        "arn": api_rule["RuleArn"],
        "priority": int(api_rule["Priority"]),
        "name": (tags or {}).get(NAME_TAG),
        "conditions": conditions_from_api(api_rule.get("Conditions")),
        "action": action_from_api(api_rule.get("Actions")),
    }


def desired_rule(rule, tg_arn_of=None, need_action=True):
    """One entry of the module's ``rules`` option -> canonical rule (arn None, priority maybe None)."""
    conditions = canonical_conditions(rule.get("conditions"))
    if not conditions and not rule.get("name"):
        raise RuleError("a rule needs conditions (or, with state=absent, a name)")
    action = None
    if need_action:
        if not conditions:
            raise RuleError("rule %r needs conditions" % rule.get("name"))
        action = canonical_action(rule, tg_arn_of)
    return {
        "arn": None,
        "priority": rule.get("priority"),
        "name": rule.get("name"),
        "conditions": conditions,
        "action": action,
    }


def sort_rules(rules):
    return sorted(rules, key=lambda r: (r["priority"] is None, r["priority"] or 0, r.get("arn") or ""))


def describe_rule(rule):
    """Short human label used in messages: the name tag, else the conditions."""
    if rule.get("name"):
        return "rule %r" % rule["name"]
    parts = []
    for option, value in rule["conditions"].items():
        parts.append("%s=%s" % (option, value))
    return "rule [%s]" % ", ".join(parts)


# --- up-front validation of the module's ``rules`` option ---------------------------------------

_METHOD = re.compile(r"^[A-Z_-]{1,40}$")
_STATUS = re.compile(r"^[245][0-9][0-9]$")
_LIST_CONDITIONS = ("path_pattern", "host_header", "http_request_method", "source_ip")


def rule_label(index, rule):
    """``rules[2] 'canary'``: where the rule is in the task, and its name if it has one."""
    name = rule.get("name")
    return "rules[%d]%s" % (index, " %r" % name if name else "")


def _value_problems(field, values, max_len=128):
    if not values:
        return ["%s is empty (leave the condition out to not match on it)" % field]
    return [
        "%s[%d] must be 1-%d characters" % (field, i, max_len)
        for i, value in enumerate(values)
        if not value or len(value) > max_len
    ]


def _condition_problems(conditions):
    problems = []
    count = 0
    for option in _LIST_CONDITIONS:
        values = conditions.get(option)
        if values is None:
            continue
        field = "conditions." + option
        problems += _value_problems(field, values)
        count += len(values)
        if option == "http_request_method":
            problems += [
                "%s[%d] %r must be upper case (A-Z, - and _; AWS compares methods case-sensitively)" % (field, i, v)
                for i, v in enumerate(values)
                if v and not _METHOD.match(v)
            ]
        if option == "source_ip":
            for i, value in enumerate(values):
                try:
                    ipaddress.ip_network(value, strict=False)
                except ValueError:
                    problems.append("%s[%d] %r is not a CIDR block" % (field, i, value))
    for i, header in enumerate(conditions.get("http_header") or []):
        field = "conditions.http_header[%d]" % i
        if not header.get("name") or len(header["name"]) > 40:
            problems.append("%s.name must be 1-40 characters" % field)
        problems += _value_problems(field + ".values", header.get("values"))
        count += len(header.get("values") or [])
    if conditions.get("http_header") == []:
        problems.append("conditions.http_header is empty (leave the condition out to not match on it)")
    for i, entry in enumerate(conditions.get("query_string") or []):
        field = "conditions.query_string[%d]" % i
        if entry.get("values") is not None:
            if entry.get("key") is not None or entry.get("value") is not None:
                problems.append("%s: give either key/value or values, not both" % field)
            pairs = entry["values"]
            field += ".values"
        elif entry.get("value") is not None:
            pairs = [entry]
        else:
            problems.append("%s needs a value (or values, a list of key/value pairs)" % field)
            continue
        if not pairs:
            problems.append("%s is empty" % field)
        for j, pair in enumerate(pairs):
            where = field if pair is entry else "%s[%d]" % (field, j)
            if not pair.get("value") or len(pair["value"]) > 128:
                problems.append("%s.value must be 1-128 characters" % where)
            if pair.get("key") is not None and not 1 <= len(pair["key"]) <= 128:
                problems.append("%s.key must be 1-128 characters" % where)
        count += len(pairs)
    if conditions.get("query_string") == []:
        problems.append("conditions.query_string is empty (leave the condition out to not match on it)")
    if count > MAX_CONDITION_VALUES:
        problems.append(
            "conditions have %d values; AWS allows at most %d per rule (split the rule)" % (count, MAX_CONDITION_VALUES)
        )
    return problems


def _action_problems(rule):
    problems = []
    forward = rule.get("forward")
    if forward:
        groups = forward.get("target_groups") or []
        if not 1 <= len(groups) <= MAX_TARGET_GROUPS:
            problems.append(
                "forward.target_groups has %d entries; AWS allows 1-%d per action" % (len(groups), MAX_TARGET_GROUPS)
            )
        for i, group in enumerate(groups):
            if not (group.get("name") or group.get("arn")):
                problems.append("forward.target_groups[%d] needs a name or an arn" % i)
            weight = group.get("weight")
            if weight is not None and not 0 <= weight <= 999:
                problems.append("forward.target_groups[%d].weight %d is out of range 0-999" % (i, weight))
        duration = forward.get("stickiness_duration")
        if duration is not None and not 1 <= duration <= 604800:
            problems.append("forward.stickiness_duration %d is out of range 1-604800 seconds" % duration)
    redirect = rule.get("redirect")
    if redirect:
        if redirect.get("protocol") not in (None, "HTTP", "HTTPS", "#{protocol}"):
            problems.append("redirect.protocol %r must be HTTP, HTTPS or #{protocol}" % redirect["protocol"])
        port = redirect.get("port")
        if port is not None and port != "#{port}" and not (port.isdigit() and 1 <= int(port) <= 65535):
            problems.append("redirect.port %r must be 1-65535 or #{port}" % port)
        if redirect.get("path") is not None and not redirect["path"].startswith("/"):
            problems.append("redirect.path %r must start with /" % redirect["path"])
    fixed = rule.get("fixed_response")
    if fixed:
        if not _STATUS.match(str(fixed.get("status_code"))):
            problems.append("fixed_response.status_code %r must be a 2XX, 4XX or 5XX code" % fixed.get("status_code"))
        if len(fixed.get("message_body") or "") > 1024:
            problems.append("fixed_response.message_body is longer than 1024 characters")
    return problems


def validate_request(rules, state="present"):
    """Every problem of the ``rules`` option, each naming the rule and the field; [] when fine.

    Run before anything is written, so that a bad entry never leaves the listener half-changed.
    """
    problems = []
    for index, rule in enumerate(rules):
        label = rule_label(index, rule)
        conditions = {k: v for k, v in (rule.get("conditions") or {}).items() if v is not None}
        mine = _condition_problems(conditions)
        priority = rule.get("priority")
        if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            mine.append("priority %d is out of range %d-%d" % (priority, MIN_PRIORITY, MAX_PRIORITY))
        if state == "present":
            if not conditions:
                mine.append("needs conditions")
            actions = [option for option in ACTION_OPTIONS if rule.get(option)]
            if not actions:
                mine.append("needs an action: one of %s" % ", ".join(ACTION_OPTIONS))
            mine += _action_problems(rule)
        elif not conditions and not rule.get("name"):
            mine.append("needs a name or conditions to find the rule to delete")
        problems += ["%s: %s" % (label, problem) for problem in mine]
    return problems


def desired_rules(rules, tg_arn_of=None, state="present"):
    """Validate the whole ``rules`` option, then convert it; RuleError lists every problem found."""
    problems = validate_request(rules, state)
    result = []
    if not problems:
        for index, rule in enumerate(rules):
            try:
                result.append(desired_rule(rule, tg_arn_of, need_action=(state == "present")))
            except RuleError as e:
                problems.append("%s: %s" % (rule_label(index, rule), e))
    if problems:
        raise RuleError("invalid rules, nothing was changed: " + "; ".join(problems))
    return result


# --- shadowing: a rule evaluated earlier that matches everything a later one matches --------------


def _glob_covers(general, specific, fold):
    """True when every string matched by glob ``specific`` is matched by glob ``general`` (``*``, ``?``).

    Sound, not complete: a ``*`` in ``specific`` is only covered by a ``*``, a ``?`` by ``?`` or ``*``.
    """
    if fold:
        general, specific = general.lower(), specific.lower()
    # reach[j]: general[:i] can consume specific[:j]
    reach = [True] + [False] * len(specific)
    for g in general:
        if g == "*":
            for j in range(1, len(reach)):
                reach[j] = reach[j] or reach[j - 1]
            continue
        new = [False] * len(reach)
        for j in range(1, len(reach)):
            s = specific[j - 1]
            new[j] = reach[j - 1] and (s == g if g != "?" else s != "*") and (g == "?" or s not in "*?")
        reach = new
    return reach[-1]


def _globs_cover(general, specific, fold):
    return all(any(_glob_covers(g, s, fold) for g in general) for s in specific)


def _cidrs_cover(general, specific):
    def inside(s, g):
        try:
            s, g = ipaddress.ip_network(s, strict=False), ipaddress.ip_network(g, strict=False)
        except ValueError:
            return False
        return s.version == g.version and s.subnet_of(g)

    return all(any(inside(s, g) for g in general) for s in specific)


def _pairs_cover(general, specific):
    def pair(g, s):
        if g["key"] is not None and (s["key"] is None or not _glob_covers(g["key"], s["key"], True)):
            return False
        return _glob_covers(g["value"], s["value"], True)

    return all(any(pair(g, s) for g in general) for s in specific)


def conditions_cover(general, specific):
    """True when every request matching canonical conditions ``specific`` also matches ``general``.

    Conditions of different types AND, values of one condition OR; so ``general`` covers
    ``specific`` when each of its conditions is implied by one of ``specific``'s.
    """
    for option, want in general.items():
        have = specific.get(option)
        if have is None:
            return False
        if option == "path_pattern":
            ok = _globs_cover(want, have, fold=False)
        elif option == "host_header":
            ok = _globs_cover(want, have, fold=True)
        elif option == "http_request_method":
            ok = set(have) <= set(want)
        elif option == "source_ip":
            ok = _cidrs_cover(want, have)
        elif option == "http_header":
            ok = all(
                any(
                    h["name"].lower() == w["name"].lower() and _globs_cover(w["values"], h["values"], True)
                    for h in have
                )
                for w in want
            )
        else:
            ok = all(any(_pairs_cover(w["values"], h["values"]) for h in have) for w in want)
        if not ok:
            return False
    return bool(general)


# --- validation and matching ------------------------------------------------------------------


def validate_desired(desired):
    """Fail early on input that cannot be applied without guessing."""
    seen_priorities = {}
    seen_names = {}
    seen_conditions = []
    for rule in desired:
        prio = rule["priority"]
        if prio is not None:
            if not MIN_PRIORITY <= prio <= MAX_PRIORITY:
                raise RuleError(
                    "%s: priority %d is out of range %d-%d" % (describe_rule(rule), prio, MIN_PRIORITY, MAX_PRIORITY)
                )
            if prio in seen_priorities:
                raise RuleError(
                    "overlapping rule priorities: %s and %s both ask for priority %d; give each rule its own priority"
                    % (describe_rule(seen_priorities[prio]), describe_rule(rule), prio)
                )
            seen_priorities[prio] = rule
        if rule["name"]:
            if rule["name"] in seen_names:
                raise RuleError("two rules are named %r; names identify rules and must be unique" % rule["name"])
            seen_names[rule["name"]] = rule
        if rule["conditions"]:
            if rule["conditions"] in seen_conditions:
                raise RuleError(
                    "%s is listed twice with the same conditions; AWS would only ever use the first"
                    % describe_rule(rule)
                )
            seen_conditions.append(rule["conditions"])


def match_rules(existing, desired):
    """Pair each desired rule with an existing one: by name tag first, else by identical conditions.

    Returns a list of (desired, existing_or_None) in desired order. Matching by content (not by
    priority) is what keeps inserting a rule from rewriting its neighbours.
    """
    claimed = set()
    pairs = []
    by_name = {r["name"]: r for r in existing if r["name"]}
    for want in desired:
        found = None
        if want["name"] and want["name"] in by_name and by_name[want["name"]]["arn"] not in claimed:
            found = by_name[want["name"]]
        elif want["conditions"]:
            for have in existing:
                if have["arn"] in claimed or have["conditions"] != want["conditions"]:
                    continue
                # A rule tagged with another name belongs to someone else's entry.
                if have["name"] and want["name"] and have["name"] != want["name"]:
                    continue
                if have["name"] and not want["name"] and have["name"] in [d["name"] for d in desired]:
                    continue
                found = have
                break
        if found is not None:
            claimed.add(found["arn"])
        pairs.append((want, found))
    return pairs


# --- planning ---------------------------------------------------------------------------------


def _free_between(low, high, foreign_sorted):
    """Number of priorities strictly between low and high that no kept, unmanaged rule holds."""
    if high <= low + 1:
        return 0
    held = bisect.bisect_left(foreign_sorted, high) - bisect.bisect_right(foreign_sorted, low)
    return high - low - 1 - held


def assign_priorities(pairs, foreign):
    """Final priority of each (want, have) pair so that list order is evaluation order.

    Explicit priorities are fixed; every other matched rule keeps its priority when it can, and
    as many of them as possible do (a longest chain of rules that are already in order and leave
    room for the rules listed between them); the rest, and new rules, take the lowest free
    priorities after the rule listed before them. ``foreign``: priorities of kept, unmanaged rules.
    """
    foreign_sorted = sorted(foreign)
    n = len(pairs)
    # Anchors: (index, priority, weight, mandatory), with virtual ends at -1 and n.
    anchors = [(-1, MIN_PRIORITY - 1, 0, True)]
    for index, (want, have) in enumerate(pairs):
        if want["priority"] is not None:
            anchors.append((index, want["priority"], 0, True))
        elif have is not None:
            anchors.append((index, have["priority"], 1, False))
    anchors.append((n, MAX_PRIORITY + 1, 0, True))

    def fits(a, b):
        return a[1] < b[1] and _free_between(a[1], b[1], foreign_sorted) >= b[0] - a[0] - 1

    _check_explicit_order(pairs, anchors, fits)
    best = [None] * len(anchors)  # (kept count, previous anchor) of the best chain ending here
    best[0] = (0, None)
    for k in range(1, len(anchors)):
        for j in range(k - 1, -1, -1):
            if best[j] is not None and fits(anchors[j], anchors[k]):
                score = best[j][0] + anchors[k][2]
                if best[k] is None or score > best[k][0]:
                    best[k] = (score, j)
            if anchors[j][3]:
                break  # a chain may not skip a rule with an explicit priority
    chain = []
    k = len(anchors) - 1
    while k is not None:
        chain.append(anchors[k])
        k = best[k][1]
    chain.reverse()

    final = {}
    for position in range(len(chain) - 1):
        start, low = chain[position][:2]
        end = chain[position + 1][0]
        if start >= 0:
            final[start] = low
        candidate = low
        for index in range(start + 1, end):
            candidate += 1
            while candidate in foreign:
                candidate += 1
            final[index] = candidate
    return final


def _check_explicit_order(pairs, anchors, fits):
    """Fail, naming the rules, when the explicit priorities alone cannot follow the list order."""
    fixed = [a for a in anchors if a[3]]
    for position in range(len(fixed) - 1):
        a, b = fixed[position], fixed[position + 1]
        if fits(a, b):
            continue
        before = describe_rule(pairs[a[0]][0]) if a[0] >= 0 else None
        after = describe_rule(pairs[b[0]][0]) if b[0] < len(pairs) else None
        if before and after and a[1] >= b[1]:
            raise RuleError(
                "%s is listed after %s but asks for priority %d, not above %d: list order is evaluation order,"
                " so list the rules in priority order" % (after, before, b[1], a[1])
            )
        squeezed = ", ".join(describe_rule(pairs[i][0]) for i in range(a[0] + 1, b[0]))
        if before and after:
            where = "between %s (priority %d) and %s (priority %d)" % (before, a[1], after, b[1])
            fix = "leave a wider gap between their priorities"
        elif before:
            where, fix = "after %s (priority %d)" % (before, a[1]), "give %s a lower priority" % before
        else:
            where, fix = "before %s (priority %d)" % (after, b[1]), "give %s a higher priority" % after
        raise RuleError("no free priority for %s, listed %s: %s" % (squeezed, where, fix))


def shadowed_rules(after, listed):
    """(earlier, later) pairs of rules in ``after`` (sorted by priority) where the earlier one's
    conditions cover the later one's, so the later rule can never match. ``listed``: ids of the
    rules this task manages, to tell the user's own ordering mistakes from a neighbour's."""
    found = []
    for i, later in enumerate(after):
        for earlier in after[:i]:
            if conditions_cover(earlier["conditions"], later["conditions"]):
                found.append((earlier, later, id(earlier) in listed and id(later) in listed))
                break
    return found


def plan_rules(existing, desired, purge=False, state="present", other_rules=0, rules_quota=DEFAULT_RULES_QUOTA):
    """Compute what to do. Pure: returns a dict of operations and the predicted final rule list.

    Keys: ``create`` (canonical rules with final priority), ``modify`` (arn, rule), ``tag`` (arn,
    name), ``delete`` (rules), ``moves`` (arn -> final priority), ``after`` (sorted rules),
    ``warnings`` (messages). ``other_rules``: rules on the load balancer's other listeners, which
    count against the same ``rules_quota``.
    """
    validate_desired(desired)
    pairs = match_rules(existing, desired)
    matched_arns = {have["arn"] for _want, have in pairs if have is not None}
    plan = {"create": [], "modify": [], "tag": [], "delete": [], "moves": {}, "after": [], "warnings": []}

    if state == "absent":
        plan["delete"] = sort_rules([have for _want, have in pairs if have is not None])
        gone = {r["arn"] for r in plan["delete"]}
        plan["after"] = sort_rules([copy.deepcopy(r) for r in existing if r["arn"] not in gone])
        return plan

    unmanaged = [r for r in existing if r["arn"] not in matched_arns]
    if purge:
        plan["delete"] = sort_rules(unmanaged)
        kept_unmanaged = []
    else:
        kept_unmanaged = unmanaged

    # Priorities that are not ours to take: rules we keep but do not manage.
    foreign = {r["priority"]: r for r in kept_unmanaged}
    for want, _have in pairs:
        if want["priority"] in foreign:
            raise RuleError(
                "overlapping rule priorities: %s asks for priority %d, which %s (not managed by this task) holds;"
                " choose another priority or set purge=true"
                % (describe_rule(want), want["priority"], describe_rule(foreign[want["priority"]]))
            )
    final = assign_priorities(pairs, foreign)

    after = [copy.deepcopy(r) for r in kept_unmanaged]
    listed = set()
    for index, (want, have) in enumerate(pairs):
        target = dict(want, priority=final[index])
        if have is None:
            plan["create"].append(target)
            after.append(target)
            listed.add(id(target))
            continue
        result = dict(target, arn=have["arn"], name=want["name"] or have["name"])
        if have["action"].get("authenticate"):
            # Not managed here: an existing rule's authenticate-* actions stay in front of its action.
            result["action"] = dict(result["action"], authenticate=have["action"]["authenticate"])
        if want["conditions"] != have["conditions"] or result["action"] != have["action"]:
            plan["modify"].append((have["arn"], result))
        if want["name"] and want["name"] != have["name"]:
            plan["tag"].append((have["arn"], want["name"]))
        if final[index] != have["priority"]:
            plan["moves"][have["arn"]] = final[index]
        after.append(result)
        listed.add(id(result))
    plan["after"] = sort_rules(after)

    total = len(plan["after"]) + other_rules
    if total > rules_quota and total > len(existing) + other_rules:
        raise RuleError(
            "the load balancer would have %d rules (%d on this listener, %d on its other listeners); its quota is %d"
            " (rules_quota; default rules not counted)" % (total, len(plan["after"]), other_rules, rules_quota)
        )
    for earlier, later, both_listed in shadowed_rules(plan["after"], listed):
        message = "%s (priority %d) covers everything %s (priority %d) matches, so %s can never match" % (
            describe_rule(earlier),
            earlier["priority"],
            describe_rule(later),
            later["priority"],
            describe_rule(later),
        )
        if both_listed:
            raise RuleError(message + ": list the more specific rule first")
        plan["warnings"].append(message)
    return plan


def plan_changed(plan):
    return bool(plan["create"] or plan["modify"] or plan["tag"] or plan["delete"] or plan["moves"])


def temporary_priority(occupied):
    """Highest free priority: parks a rule while the one it replaces still holds its place."""
    for candidate in range(MAX_PRIORITY, MIN_PRIORITY - 1, -1):
        if candidate not in occupied:
            return candidate
    raise RuleError("no free priority left on the listener")


def order_moves(current, moves):
    """Split priority moves into SetRulePriorities batches that never put two rules on one priority.

    ``current``: arn -> priority of every rule on the listener now; ``moves``: arn -> target.
    A swap (or longer cycle) parks one rule on a temporary free priority first, because AWS
    and moto both reject a batch whose targets are held when it starts.
    Returns a list of batches, each a list of (arn, priority).
    """
    current = dict(current)
    pending = {arn: prio for arn, prio in moves.items() if current.get(arn) != prio}
    targets = list(pending.values())
    if len(set(targets)) != len(targets):
        raise RuleError("two rules would move to the same priority")
    batches = []
    while pending:
        held = set(current.values())
        batch = [(arn, prio) for arn, prio in sorted(pending.items(), key=lambda i: i[1]) if prio not in held]
        if not batch:
            arn = sorted(pending)[0]
            park = temporary_priority(held | set(pending.values()))
            batch = [(arn, park)]
            current[arn] = park
            batches.append(batch)
            continue
        for arn, prio in batch:
            current[arn] = prio
            del pending[arn]
        batches.append(batch)
    return batches


# --- presentation -----------------------------------------------------------------------------


def rule_for_output(rule):
    """Canonical rule -> what the module returns (and shows in the diff)."""
    out = {
        "rule_arn": rule.get("arn"),
        "priority": rule["priority"],
        "name": rule.get("name"),
        "conditions": copy.deepcopy(rule["conditions"]),
        "action": copy.deepcopy(rule["action"]),
    }
    return out
