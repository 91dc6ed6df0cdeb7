"""The integration targets, each against a fresh moto state, plus the out-of-band drift check."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = HERE / "targets"
RUN_TARGET = HERE / "run_target.yml"
OIDC = {
    "Issuer": "https://idp.example",
    "AuthorizationEndpoint": "https://idp.example/authorize",
    "TokenEndpoint": "https://idp.example/token",
    "UserInfoEndpoint": "https://idp.example/userinfo",
    "ClientId": "votingapp",
    "ClientSecret": "not-a-secret",
}


def listener_rules(aws, prefix):
    elb = aws.client("elbv2")
    lb = elb.describe_load_balancers(Names=[f"{prefix}-alb"])["LoadBalancers"][0]
    listener = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"][0]
    rules = [r for r in elb.describe_rules(ListenerArn=listener["ListenerArn"])["Rules"] if not r["IsDefault"]]
    return sorted(rules, key=lambda r: int(r["Priority"]))


def test_every_target_has_aliases():
    targets = [p for p in TARGETS.iterdir() if p.is_dir()]
    assert {p.name for p in targets} >= {"alb_listener_rules", "alb_target_health"}
    for target in targets:
        assert (target / "aliases").is_file(), target


def test_alb_listener_rules_then_out_of_band_change_is_corrected_keeping_authentication(aws, playbook):
    run = playbook(RUN_TARGET, extra_vars={"target": "alb_listener_rules"})
    assert run.rc == 0 and run.failures == 0, run.failed_messages() or run.stderr
    before = listener_rules(aws, "itest")
    assert [int(r["Priority"]) for r in before] == [10, 20, 30]

    # Behind Ansible's back: move the vote rule, put the result rule behind OIDC and point it
    # somewhere else. The module manages the action, not the authentication in front of it.
    elb = aws.client("elbv2")
    vote, result = before[0], before[1]
    elb.set_rule_priorities(RulePriorities=[{"RuleArn": vote["RuleArn"], "Priority": 15}])
    elb.modify_rule(
        RuleArn=result["RuleArn"],
        Actions=[
            {"Type": "authenticate-oidc", "Order": 1, "AuthenticateOidcConfig": OIDC},
            {
                "Type": "fixed-response",
                "Order": 2,
                "FixedResponseConfig": {"StatusCode": "503", "ContentType": "text/plain"},
            },
        ],
    )
    drifted = {r["RuleArn"]: r for r in listener_rules(aws, "itest")}
    assert drifted[vote["RuleArn"]]["Priority"] == "15"

    tgs = {t["TargetGroupName"]: t["TargetGroupArn"] for t in elb.describe_target_groups()["TargetGroups"]}
    extra = {
        "target": "alb_listener_rules",
        "rules_drift_check": True,
        "listener_arn": vote["RuleArn"].replace(":listener-rule/", ":listener/").rsplit("/", 1)[0],
        "tg_arn": {name.removeprefix("itest-"): arn for name, arn in tgs.items()},
    }
    run = playbook(RUN_TARGET, extra_vars=extra)
    assert run.rc == 0 and run.failures == 0, run.failed_messages() or run.stderr
    # Exactly the check-mode run and the correcting run saw a difference.
    assert sorted(run.changed_tasks()) == ["Final rule set", "Final rule set (check mode)"]
    after = listener_rules(aws, "itest")
    assert [(r["RuleArn"], r["Priority"]) for r in after] == [(r["RuleArn"], r["Priority"]) for r in before]
    actions = sorted(after[1]["Actions"], key=lambda a: a["Order"])
    assert [a["Type"] for a in actions] == ["authenticate-oidc", "forward"]
    assert actions[0]["AuthenticateOidcConfig"]["Issuer"] == OIDC["Issuer"]


def test_alb_target_health(aws, playbook):
    run = playbook(RUN_TARGET, extra_vars={"target": "alb_target_health"})
    assert run.rc == 0 and run.failures == 0, run.failed_messages() or run.stderr
