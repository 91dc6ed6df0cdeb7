"""Rule diffing of alb_listener_rules: pure functions, fed with DescribeRules shapes that AWS and
moto really return (legacy ``Values``, ``*Config`` blocks, forward with and without ForwardConfig)."""

from __future__ import annotations

import importlib.util
import itertools
import random
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[4] / "plugins" / "module_utils" / "_elbv2_rules.py"
spec = importlib.util.spec_from_file_location("_elbv2_rules", PATH)
rules = importlib.util.module_from_spec(spec)
spec.loader.exec_module(rules)

TG_VOTE = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/vote/1"
TG_RESULT = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/result/2"
TGS = {"vote": TG_VOTE, "result": TG_RESULT, TG_VOTE: TG_VOTE, TG_RESULT: TG_RESULT}


def resolve(ref):
    if ref not in TGS:
        raise rules.RuleError(f"unknown target group {ref!r}")
    return TGS[ref]


def api_rule(arn, priority, path, tg=TG_VOTE, legacy=True):
    cond = (
        {"Field": "path-pattern", "Values": [path]}
        if legacy
        else {
            "Field": "path-pattern",
            "PathPatternConfig": {"Values": [path]},
        }
    )
    action = (
        {"Type": "forward", "TargetGroupArn": tg}
        if legacy
        else {
            "Type": "forward",
            "TargetGroupArn": tg,
            "ForwardConfig": {
                "TargetGroups": [{"TargetGroupArn": tg, "Weight": 1}],
                "TargetGroupStickinessConfig": {"Enabled": False},
            },
        }
    )
    return {"RuleArn": arn, "Priority": str(priority), "Conditions": [cond], "Actions": [action], "IsDefault": False}


def existing(*specs):
    """specs: (arn, priority, path[, name[, tg]])"""
    out = []
    for s in specs:
        arn, prio, path = s[:3]
        name = s[3] if len(s) > 3 else None
        tg = s[4] if len(s) > 4 else TG_VOTE
        out.append(rules.rule_from_api(api_rule(arn, prio, path, tg), {"Name": name} if name else {}))
    return out


def want(path, tg="vote", name=None, priority=None, **extra):
    rule = {"conditions": {"path_pattern": [path]}, "target_group": tg, "name": name, "priority": priority}
    rule.update(extra)
    return rules.desired_rule(rule, resolve)


# --- canonical form ---------------------------------------------------------------------------


@pytest.mark.parametrize("legacy", [True, False])
def test_api_shapes_compare_equal_to_the_request(legacy):
    have = rules.rule_from_api(api_rule("a", 3, "/vote*", legacy=legacy))
    wanted = want("/vote*")
    assert have["conditions"] == wanted["conditions"]
    assert have["action"] == wanted["action"]
    assert have["priority"] == 3


def test_every_condition_type_round_trips_through_the_api_form():
    conditions = {
        "path_pattern": ["/b", "/a"],
        "host_header": ["x.example"],
        "http_request_method": ["POST", "GET"],
        "source_ip": ["10.0.0.0/8"],
        "http_header": [{"name": "X-B", "values": ["2"]}, {"name": "X-A", "values": ["1", "0"]}],
        "query_string": [{"key": "k", "value": "v"}, {"key": None, "value": "bare"}],
    }
    canonical = rules.canonical_conditions(conditions)
    assert canonical["path_pattern"] == ["/a", "/b"]
    assert [h["name"] for h in canonical["http_header"]] == ["X-A", "X-B"]
    api = rules.conditions_to_api(canonical)
    assert sum(1 for c in api if c["Field"] == "http-header") == 2
    qs = next(c for c in api if c["Field"] == "query-string")["QueryStringConfig"]["Values"]
    assert {"Value": "bare"} in qs
    assert rules.conditions_from_api(api) == canonical


def test_redirect_defaults_fill_in_what_moto_omits_and_aws_adds():
    wanted = rules.canonical_action({"redirect": {"status_code": "HTTP_301", "protocol": "HTTPS"}})
    moto_shape = rules.action_from_api(
        [{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "StatusCode": "HTTP_301"}}]
    )
    aws_shape = rules.action_from_api(
        [
            {
                "Type": "redirect",
                "RedirectConfig": {
                    "Protocol": "HTTPS",
                    "Port": "#{port}",
                    "Host": "#{host}",
                    "Path": "/#{path}",
                    "Query": "#{query}",
                    "StatusCode": "HTTP_301",
                },
            }
        ]
    )
    assert wanted == moto_shape == aws_shape
    assert rules.action_from_api(rules.action_to_api(wanted)) == wanted


def test_fixed_response_and_weighted_forward_round_trip():
    fixed = rules.canonical_action({"fixed_response": {"status_code": "404", "content_type": "text/plain"}})
    assert rules.action_from_api(rules.action_to_api(fixed)) == fixed
    weighted = rules.canonical_action(
        {
            "forward": {
                "target_groups": [{"name": "vote", "weight": 9}, {"arn": TG_RESULT, "weight": 1}],
                "stickiness_duration": 300,
            }
        },
        resolve,
    )
    back = rules.action_from_api(rules.action_to_api(weighted))
    assert back == weighted
    assert back["stickiness"] == {"enabled": True, "duration": 300}


def test_changed_weight_is_a_difference():
    a = rules.canonical_action({"forward": {"target_groups": [{"name": "vote", "weight": 1}]}}, resolve)
    b = rules.canonical_action({"forward": {"target_groups": [{"name": "vote", "weight": 2}]}}, resolve)
    assert a != b


def test_unknown_target_group_is_named():
    with pytest.raises(rules.RuleError, match="unknown target group 'nope'"):
        want("/x", tg="nope")


# --- planning ---------------------------------------------------------------------------------


def test_appending_a_rule_leaves_its_neighbours_alone():
    have = existing(("a", 1, "/vote*"), ("b", 2, "/result*", None, TG_RESULT))
    desired = [want("/vote*"), want("/result*", tg="result"), want("/admin*")]
    plan = rules.plan_rules(have, desired)
    assert plan["modify"] == [] and plan["delete"] == [] and plan["moves"] == {}
    assert [(r["conditions"]["path_pattern"], r["priority"]) for r in plan["create"]] == [(["/admin*"], 3)]


def test_a_rule_listed_first_is_evaluated_first_moving_the_fewest_rules():
    # No room below 1: the rules listed after the new one move up, as few as possible.
    have = existing(("a", 1, "/vote*"), ("b", 2, "/result*", None, TG_RESULT), ("c", 9, "/x*"))
    plan = rules.plan_rules(have, [want("/admin*"), want("/vote*"), want("/result*", tg="result"), want("/x*")])
    assert plan["moves"] == {"a": 2, "b": 3}
    assert [r["priority"] for r in plan["create"]] == [1]
    assert [r["conditions"]["path_pattern"][0] for r in plan["after"]] == ["/admin*", "/vote*", "/result*", "/x*"]


def test_a_rule_inserted_where_there_is_room_moves_nothing():
    have = existing(("a", 10, "/vote*"), ("b", 20, "/result*", None, TG_RESULT))
    plan = rules.plan_rules(have, [want("/admin*"), want("/vote*"), want("/v2*"), want("/result*", tg="result")])
    assert plan["moves"] == {}
    assert [r["priority"] for r in plan["create"]] == [1, 11]


def test_the_longest_run_of_rules_already_in_order_stays_put():
    have = existing(("a", 10, "/a"), ("b", 20, "/b"), ("c", 30, "/c"), ("d", 40, "/d"))
    plan = rules.plan_rules(have, [want("/d"), want("/a"), want("/b"), want("/c")])
    assert plan["moves"] == {"d": 1}
    # Without room the fewest rules still move: here keeping d and moving a, b and c after it.
    tight = existing(("a", 1, "/a"), ("b", 2, "/b"), ("c", 3, "/c"), ("d", 4, "/d"))
    plan = rules.plan_rules(tight, [want("/d"), want("/a"), want("/b"), want("/c")])
    assert plan["moves"] == {"a": 5, "b": 6, "c": 7}


def test_unmanaged_rules_keep_their_priority_and_are_stepped_over():
    have = existing(("a", 1, "/a"), ("x", 2, "/legacy*"), ("b", 3, "/b"))
    plan = rules.plan_rules(have, [want("/a"), want("/new"), want("/b")])
    assert plan["moves"] == {"b": 4} and [r["priority"] for r in plan["create"]] == [3]
    after = {r["conditions"]["path_pattern"][0]: r["priority"] for r in plan["after"]}
    assert after["/legacy*"] == 2 and after["/a"] < after["/new"] < after["/b"]


def test_new_rule_goes_above_the_rules_listed_before_it():
    have = existing(("a", 10, "/vote*"), ("b", 20, "/result*", None, TG_RESULT))
    plan = rules.plan_rules(have, [want("/vote*"), want("/v2*"), want("/result*", tg="result")])
    assert plan["create"][0]["priority"] == 11


def test_rerunning_on_the_result_is_a_no_op():
    have = existing(("a", 1, "/vote*"))
    desired = [want("/admin*", priority=5), want("/vote*"), want("/result*", tg="result", name="result")]
    plan = rules.plan_rules(have, desired)
    assert rules.plan_changed(plan)
    after = [dict(r, arn=r["arn"] or f"new-{i}") for i, r in enumerate(plan["after"])]
    again = rules.plan_rules(after, desired)
    assert not rules.plan_changed(again)


def test_name_tag_lets_conditions_change_in_place():
    have = existing(("a", 4, "/vote*", "vote"))
    plan = rules.plan_rules(have, [want("/ballot*", name="vote")])
    assert plan["create"] == [] and plan["delete"] == []
    assert [arn for arn, _rule in plan["modify"]] == ["a"]
    assert plan["after"][0]["priority"] == 4


def test_content_match_adopts_an_untagged_rule_and_tags_it():
    have = existing(("a", 4, "/vote*"))
    plan = rules.plan_rules(have, [want("/vote*", name="vote")])
    assert plan["tag"] == [("a", "vote")] and plan["modify"] == [] and plan["create"] == []


def test_action_change_is_modified_in_place():
    have = existing(("a", 1, "/vote*"))
    plan = rules.plan_rules(have, [want("/vote*", tg="result")])
    assert [arn for arn, _rule in plan["modify"]] == ["a"]
    assert plan["create"] == [] and plan["delete"] == []


def test_purge_false_keeps_unmanaged_rules_and_purge_true_removes_them():
    have = existing(("a", 1, "/vote*"), ("x", 7, "/legacy*"))
    kept = rules.plan_rules(have, [want("/vote*")])
    assert kept["delete"] == [] and [r["arn"] for r in kept["after"]] == ["a", "x"]
    purged = rules.plan_rules(have, [want("/vote*")], purge=True)
    assert [r["arn"] for r in purged["delete"]] == ["x"]


def test_state_absent_deletes_only_the_listed_rules():
    have = existing(("a", 1, "/vote*", "vote"), ("b", 2, "/result*"))
    plan = rules.plan_rules(have, [rules.desired_rule({"name": "vote"}, need_action=False)], state="absent")
    assert [r["arn"] for r in plan["delete"]] == ["a"]
    assert [r["arn"] for r in plan["after"]] == ["b"]
    missing = rules.plan_rules(have, [rules.desired_rule({"name": "gone"}, need_action=False)], state="absent")
    assert not rules.plan_changed(missing)


def test_overlapping_explicit_priorities_fail_naming_both_rules():
    with pytest.raises(
        rules.RuleError, match=r"overlapping rule priorities: rule 'a' and rule 'b' both ask for priority 3"
    ):
        rules.plan_rules([], [want("/a", name="a", priority=3), want("/b", name="b", priority=3)])


def test_priority_held_by_an_unmanaged_rule_fails_unless_purged():
    have = existing(("x", 3, "/legacy*"))
    with pytest.raises(rules.RuleError, match=r"priority 3.*not managed by this task"):
        rules.plan_rules(have, [want("/a", priority=3)])
    plan = rules.plan_rules(have, [want("/a", priority=3)], purge=True)
    assert [r["arn"] for r in plan["delete"]] == ["x"]
    assert plan["create"][0]["priority"] == 3


def test_explicit_priority_held_by_a_managed_rule_without_one_moves_it():
    have = existing(("a", 3, "/a"))
    plan = rules.plan_rules(have, [want("/a"), want("/b", priority=3)])
    assert plan["moves"] == {"a": 1}
    assert plan["create"][0]["priority"] == 3


def test_explicit_priorities_against_the_list_order_fail_naming_both_rules():
    with pytest.raises(
        rules.RuleError, match=r"rule 'b' is listed after rule 'a' but asks for priority 1, not above 2"
    ):
        rules.plan_rules([], [want("/a", name="a", priority=2), want("/b", name="b", priority=1)])


def test_a_rule_listed_after_one_at_50000_fails_saying_why():
    # Was "no free priority left for rule 'b'" with 1-49999 free: now the message names the cause.
    with pytest.raises(
        rules.RuleError, match=r"no free priority for rule 'b', listed after rule 'a' \(priority 50000\)"
    ):
        rules.plan_rules([], [want("/a", name="a", priority=50000), want("/b", name="b")])
    # A rule that merely sits at 50000 (no explicit priority) moves down instead.
    have = existing(("a", 50000, "/a", "a"))
    plan = rules.plan_rules(have, [want("/a", name="a"), want("/b", name="b")])
    assert plan["moves"] == {"a": 1} and plan["create"][0]["priority"] == 2
    # And a new rule listed before it takes a low free priority.
    plan = rules.plan_rules(have, [want("/b", name="b"), want("/a", name="a")])
    assert plan["moves"] == {} and plan["create"][0]["priority"] == 1


def test_duplicate_names_and_conditions_and_range_fail():
    with pytest.raises(rules.RuleError, match="two rules are named 'x'"):
        rules.plan_rules([], [want("/a", name="x"), want("/b", name="x")])
    with pytest.raises(rules.RuleError, match="listed twice"):
        rules.plan_rules([], [want("/a"), want("/a")])
    with pytest.raises(rules.RuleError, match="out of range"):
        rules.plan_rules([], [want("/a", priority=50001)])


@pytest.mark.parametrize(
    ("desired", "message"),
    [
        (
            [("/a", "a", 5), ("/n", "n", None), ("/b", "b", 6)],
            r"rule 'n', listed between rule 'a' \(priority 5\) and rule 'b' \(priority 6\): leave a wider gap",
        ),
        (
            [("/n", "n", None), ("/a", "a", 1)],
            r"rule 'n', listed before rule 'a' \(priority 1\): give rule 'a' a higher",
        ),
    ],
)
def test_no_room_between_pinned_priorities_says_where_and_what_to_change(desired, message):
    with pytest.raises(rules.RuleError, match="no free priority for " + message):
        rules.plan_rules([], [want(path, name=name, priority=prio) for path, name, prio in desired])


def test_explicit_priorities_swap_two_rules():
    have = existing(("a", 1, "/a", "a"), ("b", 2, "/b", "b"))
    plan = rules.plan_rules(have, [want("/b", name="b", priority=1), want("/a", name="a", priority=2)])
    assert plan["moves"] == {"a": 2, "b": 1}
    assert [r["arn"] for r in plan["after"]] == ["b", "a"]


# --- priority moves ---------------------------------------------------------------------------


def simulate(current, batches):
    """Apply batches the way AWS/moto do: a batch fails if a target is held when it starts."""
    state = dict(current)
    for batch in batches:
        held = set(state.values())
        targets = [p for _arn, p in batch]
        assert len(set(targets)) == len(targets)
        for _arn, prio in batch:
            assert prio not in held, f"batch {batch!r} moves onto held priority {prio}"
        for arn, prio in batch:
            state[arn] = prio
        assert len(set(state.values())) == len(state)
    return state


def test_swap_is_split_through_a_parking_priority():
    current = {"a": 1, "b": 2}
    batches = rules.order_moves(current, {"a": 2, "b": 1})
    assert len(batches) == 3
    assert simulate(current, batches) == {"a": 2, "b": 1}


def test_chain_moves_in_dependency_order():
    current = {"a": 1, "b": 2, "c": 3}
    batches = rules.order_moves(current, {"a": 2, "b": 3, "c": 4})
    assert simulate(current, batches) == {"a": 2, "b": 3, "c": 4}
    assert batches[0] == [("c", 4)]


def test_random_permutations_never_collide():
    rng = random.Random(7)
    for _attempt in range(200):
        n = rng.randint(1, 8)
        arns = [f"r{i}" for i in range(n)]
        prios = rng.sample(range(1, 20), n)
        current = dict(zip(arns, prios, strict=True))
        targets = rng.sample(range(1, 20), n)
        moves = dict(zip(arns, targets, strict=True))
        assert simulate(current, rules.order_moves(current, moves)) == moves


def test_temporary_priority_is_the_highest_free_one():
    assert rules.temporary_priority({50000, 49999}) == 49998


def test_sorted_output():
    have = existing(("b", 9, "/b"), ("a", 2, "/a"))
    assert [r["priority"] for r in rules.sort_rules(have)] == [2, 9]
    out = rules.rule_for_output(have[0])
    assert set(out) == {"rule_arn", "priority", "name", "conditions", "action"}


@pytest.mark.parametrize("order", list(itertools.permutations(["/a", "/b", "/c"])))
def test_matching_does_not_depend_on_listing_order_but_evaluation_order_does(order):
    have = existing(("a", 1, "/a"), ("b", 2, "/b"), ("c", 3, "/c"))
    plan = rules.plan_rules(have, [want(p) for p in order])
    assert plan["create"] == [] and plan["modify"] == [] and plan["delete"] == []
    assert [r["conditions"]["path_pattern"][0] for r in plan["after"]] == list(order)
    assert not rules.plan_changed(rules.plan_rules(plan["after"], [want(p) for p in order]))


# --- validation before the first write (#14) --------------------------------------------------


def rule_param(**kwargs):
    rule = {"name": None, "priority": None, "conditions": {"path_pattern": ["/a"]}, "target_group": "vote"}
    rule.update(kwargs)
    return rule


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"conditions": {"path_pattern": []}}, r"rules\[1\] 'bad': conditions.path_pattern is empty"),
        (
            {"conditions": {"path_pattern": ["/1", "/2", "/3"], "host_header": ["a", "b", "c"]}},
            r"6 values; AWS allows at most 5",
        ),
        (
            {"conditions": {"http_request_method": ["get"]}},
            r"conditions.http_request_method\[0\] 'get' must be upper case",
        ),
        (
            {"conditions": {"source_ip": ["10.0.0.300/8"]}},
            r"conditions.source_ip\[0\] '10.0.0.300/8' is not a CIDR block",
        ),
        ({"conditions": {"http_header": [{"name": "X-A", "values": []}]}}, r"http_header\[0\].values is empty"),
        ({"conditions": {"query_string": [{"values": []}]}}, r"query_string\[0\].values is empty"),
        ({"target_group": None}, r"rules\[1\] 'bad': needs an action: one of target_group, forward"),
        ({"conditions": None}, r"rules\[1\] 'bad': needs conditions"),
        ({"target_group": None, "forward": {"target_groups": [{"name": "vote"}] * 6}}, r"6 entries; AWS allows 1-5"),
        ({"target_group": None, "forward": {"target_groups": [{"name": "vote", "weight": 1000}]}}, r"weight 1000"),
        ({"target_group": None, "fixed_response": {"status_code": "600"}}, r"fixed_response.status_code '600'"),
        ({"target_group": None, "redirect": {"status_code": "HTTP_301", "path": "x"}}, r"redirect.path 'x' must start"),
        ({"priority": 0}, r"priority 0 is out of range"),
        ({"target_group": "nope"}, r"rules\[1\] 'bad': unknown target group 'nope'"),
    ],
)
def test_bad_input_fails_before_anything_naming_the_rule_and_the_field(bad, message):
    request = [rule_param(name="good"), rule_param(name="bad", **bad)]
    with pytest.raises(rules.RuleError, match="invalid rules, nothing was changed: .*" + message):
        rules.desired_rules(request, resolve)


def test_every_problem_is_reported_at_once():
    request = [rule_param(conditions={"path_pattern": []}), rule_param(name="b", target_group=None)]
    problems = rules.validate_request(request)
    assert problems == [
        "rules[0]: conditions.path_pattern is empty (leave the condition out to not match on it)",
        "rules[1] 'b': needs an action: one of target_group, forward, redirect, fixed_response",
    ]


def test_absent_needs_no_action():
    assert rules.validate_request([{"name": "old"}], state="absent") == []
    assert rules.validate_request([{}], state="absent") == [
        "rules[0]: needs a name or conditions to find the rule to delete"
    ]


def test_rules_quota_counts_other_listeners():
    have = existing(*[(f"r{i}", i + 1, f"/{i}") for i in range(3)])
    desired = [want(f"/{i}") for i in range(3)] + [want("/new")]
    with pytest.raises(
        rules.RuleError, match=r"would have 101 rules \(4 on this listener, 97 on its other listeners\)"
    ):
        rules.plan_rules(have, desired, other_rules=97)
    assert rules.plan_rules(have, desired, other_rules=97, rules_quota=200)["create"]
    # Already over a lowered quota: a run that adds nothing is not blocked.
    assert not rules.plan_changed(rules.plan_rules(have, desired[:3], other_rules=97))


# --- shadowing (#14) --------------------------------------------------------------------------


def test_a_rule_listed_after_one_that_covers_it_fails():
    vote = want("/vote*", name="vote")
    canary = rules.desired_rule(
        {
            "name": "canary",
            "conditions": {"path_pattern": ["/vote*"], "http_header": [{"name": "X-Canary", "values": ["1"]}]},
            "target_group": "result",
        },
        resolve,
    )
    with pytest.raises(rules.RuleError, match=r"rule 'vote' \(priority 1\) covers everything rule 'canary'"):
        rules.plan_rules([], [vote, canary])
    plan = rules.plan_rules([], [canary, vote])
    assert [r["name"] for r in plan["after"]] == ["canary", "vote"] and plan["warnings"] == []


def test_an_unmanaged_rule_that_shadows_a_listed_one_is_a_warning():
    have = existing(("x", 1, "/*"))
    plan = rules.plan_rules(have, [want("/vote*", name="vote")])
    assert plan["warnings"] == [
        "rule [path_pattern=['/*']] (priority 1) covers everything rule 'vote' (priority 2) matches,"
        " so rule 'vote' can never match"
    ]


@pytest.mark.parametrize(
    ("general", "specific", "covers"),
    [
        ({"path_pattern": ["/vote*"]}, {"path_pattern": ["/vote/*"]}, True),
        ({"path_pattern": ["/vote*"]}, {"path_pattern": ["/result*"]}, False),
        ({"path_pattern": ["/vote?"]}, {"path_pattern": ["/vote*"]}, False),
        ({"path_pattern": ["/Vote*"]}, {"path_pattern": ["/vote"]}, False),
        ({"host_header": ["*.Example.com"]}, {"host_header": ["a.example.com"]}, True),
        ({"path_pattern": ["/a*"]}, {"path_pattern": ["/a1"], "http_request_method": ["GET"]}, True),
        ({"path_pattern": ["/a*"], "http_request_method": ["GET"]}, {"path_pattern": ["/a1"]}, False),
        ({"http_request_method": ["GET", "HEAD"]}, {"http_request_method": ["GET"]}, True),
        ({"source_ip": ["10.0.0.0/8"]}, {"source_ip": ["10.1.0.0/16"]}, True),
        ({"source_ip": ["10.1.0.0/16"]}, {"source_ip": ["10.0.0.0/8"]}, False),
        ({"query_string": [{"value": "1"}]}, {"query_string": [{"key": "a", "value": "1"}]}, True),
        ({"query_string": [{"key": "a", "value": "1"}]}, {"query_string": [{"value": "1"}]}, False),
        (
            {"query_string": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]},
            {"query_string": [{"key": "a", "value": "1"}]},
            False,
        ),
    ],
)
def test_conditions_cover(general, specific, covers):
    general = rules.canonical_conditions(general)
    specific = rules.canonical_conditions(specific)
    assert rules.conditions_cover(general, specific) is covers


# --- round trips the API shape used to lose (#14) ---------------------------------------------


def test_two_query_string_conditions_are_an_and_and_stay_two():
    both = rules.canonical_conditions({"query_string": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]})
    either = rules.canonical_conditions(
        {"query_string": [{"values": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]}]}
    )
    assert both != either
    api = rules.conditions_to_api(both)
    assert [c["Field"] for c in api] == ["query-string", "query-string"]
    assert len(rules.conditions_to_api(either)) == 1
    assert rules.conditions_from_api(api) == both
    assert rules.conditions_from_api(rules.conditions_to_api(either)) == either


def test_redirect_with_an_empty_query_converges():
    wanted = rules.canonical_action({"redirect": {"status_code": "HTTP_301", "query": ""}})
    stored = [{"Type": "redirect", "RedirectConfig": {"StatusCode": "HTTP_301", "Query": ""}}]
    assert rules.action_from_api(stored) == wanted
    assert wanted["query"] == ""


OIDC = {
    "Type": "authenticate-oidc",
    "Order": 1,
    "AuthenticateOidcConfig": {"Issuer": "https://idp", "ClientId": "c", "ClientSecret": "s"},
}
COGNITO = {"Type": "authenticate-cognito", "Order": 1, "AuthenticateCognitoConfig": {"UserPoolArn": "arn:pool"}}


@pytest.mark.parametrize("auth", [OIDC, COGNITO], ids=["oidc", "cognito"])
def test_authenticate_actions_are_kept_when_a_rule_is_modified(auth):
    rule = api_rule("a", 1, "/vote*")
    rule["Actions"] = [auth, dict(rule["Actions"][0], Order=2)]
    have = [rules.rule_from_api(rule)]
    assert have[0]["action"]["authenticate"][0]["type"] == auth["Type"]
    assert "ClientSecret" not in str(have[0]["action"])
    assert not rules.plan_changed(rules.plan_rules(have, [want("/vote*")]))
    plan = rules.plan_rules(have, [want("/vote*", tg="result")])
    ((_arn, modified),) = plan["modify"]
    written = rules.action_to_api(modified["action"])
    assert [a["Type"] for a in written] == [auth["Type"], "forward"]
    assert [a["Order"] for a in written] == [1, 2]
    if auth is OIDC:
        assert written[0]["AuthenticateOidcConfig"]["UseExistingClientSecret"] is True
        assert "ClientSecret" not in written[0]["AuthenticateOidcConfig"]
