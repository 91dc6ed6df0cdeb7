"""playbooks/aws_up.yml (provisioning part) and playbooks/aws_down.yml against moto:
up -> assert the built topology with boto3 -> up again changes nothing -> down -> nothing tagged is
left -> down again changes nothing. Host configuration over SSH is the lab's job
(aws_up_configure_hosts=false)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UP = REPO / "playbooks" / "aws_up.yml"
DOWN = REPO / "playbooks" / "aws_down.yml"
STACK = "itup"
TAG = [{"Name": "tag:votingapp-stack", "Values": [STACK]}]
ADMIN_CIDR = "203.0.113.0/24"


@pytest.fixture
def up_vars(aws, tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    image = aws.client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return {
        "aws_up_stack_name": STACK,
        "aws_up_configure_hosts": False,
        "aws_up_public_key_file": str(key) + ".pub",
        "aws_instances_image_id": image,
        "security_groups_admin_cidrs": [ADMIN_CIDR],
    }


def sg_sources(ec2, vpc_id):
    """group short name -> sorted list of (port, source) where source is a group name or a CIDR."""
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, *TAG])["SecurityGroups"]
    names = {g["GroupId"]: g["GroupName"].removeprefix(STACK + "-") for g in groups}
    matrix = {}
    for g in groups:
        flows = []
        for perm in g["IpPermissions"]:
            flows += [(perm["FromPort"], names[p["GroupId"]]) for p in perm.get("UserIdGroupPairs", [])]
            flows += [(perm["FromPort"], r["CidrIp"]) for r in perm.get("IpRanges", [])]
        matrix[names[g["GroupId"]]] = sorted(flows)
    return matrix


def test_aws_up_then_down(aws, playbook, up_vars):
    ec2, elb = aws.client("ec2"), aws.client("elbv2")

    first = playbook(UP, extra_vars=up_vars)
    assert first.rc == 0 and first.failures == 0, first.failed_messages() or first.stderr
    assert first.changed > 0

    vpc = ec2.describe_vpcs(Filters=TAG)["Vpcs"]
    assert len(vpc) == 1
    vpc_id = vpc[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=TAG)["Subnets"]
    public = [s for s in subnets if s["MapPublicIpOnLaunch"]]
    assert len({s["AvailabilityZone"] for s in public}) >= 2
    assert len(subnets) == 4

    # The flows of docs/architecture.md, and nothing else.
    assert sg_sources(ec2, vpc_id) == {
        "alb": [(80, "0.0.0.0/0")],
        "bastion": [(22, ADMIN_CIDR)],
        "vote": sorted([(22, "bastion"), (80, "alb"), (80, "bastion")]),
        "result": sorted([(22, "bastion"), (80, "alb"), (80, "bastion")]),
        "worker": [(22, "bastion")],
        "redis": sorted([(22, "bastion"), (6379, "vote"), (6379, "worker")]),
        "postgres": sorted([(22, "bastion"), (5432, "result"), (5432, "worker")]),
    }

    reservations = ec2.describe_instances(Filters=[*TAG, {"Name": "instance-state-name", "Values": ["running"]}])
    instances = [i for r in reservations["Reservations"] for i in r["Instances"]]
    groups = sorted(t["Value"] for i in instances for t in i["Tags"] if t["Key"] == "votingapp-group")
    assert groups == ["bastion", "postgres", "redis", "result", "vote", "worker"]
    public_ids = {s["SubnetId"] for s in public}
    for inst in instances:
        group = next(t["Value"] for t in inst["Tags"] if t["Key"] == "votingapp-group")
        assert (inst["SubnetId"] in public_ids) == (group == "bastion"), group

    lb = elb.describe_load_balancers(Names=[f"{STACK}-alb"])["LoadBalancers"][0]
    assert len({az["ZoneName"] for az in lb["AvailabilityZones"]}) >= 2
    listener = elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"]
    assert [(li["Port"], li["DefaultActions"][0]["Type"]) for li in listener] == [(80, "fixed-response")]
    assert listener[0]["DefaultActions"][0]["FixedResponseConfig"]["StatusCode"] == "404"
    tgs = {t["TargetGroupName"]: t for t in elb.describe_target_groups()["TargetGroups"]}
    assert tgs[f"{STACK}-vote"]["HealthCheckPath"] == "/"
    assert tgs[f"{STACK}-result"]["HealthCheckPath"] == "/result/"
    rules = sorted(
        (r for r in elb.describe_rules(ListenerArn=listener[0]["ListenerArn"])["Rules"] if not r["IsDefault"]),
        key=lambda r: int(r["Priority"]),
    )
    routed = [
        (r["Conditions"][0].get("Values") or r["Conditions"][0]["PathPatternConfig"]["Values"], r["Actions"][0])
        for r in rules
    ]
    assert [paths for paths, _action in routed] == [["/vote*"], ["/result*"]]
    forward_to = [
        a.get("TargetGroupArn") or a["ForwardConfig"]["TargetGroups"][0]["TargetGroupArn"] for _paths, a in routed
    ]
    assert forward_to == [tgs[f"{STACK}-vote"]["TargetGroupArn"], tgs[f"{STACK}-result"]["TargetGroupArn"]]
    vote_ids = {i["InstanceId"] for i in instances if {"Key": "votingapp-group", "Value": "vote"} in i["Tags"]}
    registered = elb.describe_target_health(TargetGroupArn=tgs[f"{STACK}-vote"]["TargetGroupArn"])
    assert {d["Target"]["Id"] for d in registered["TargetHealthDescriptions"]} == vote_ids

    again = playbook(UP, extra_vars=up_vars)
    assert again.rc == 0 and again.failures == 0, again.failed_messages() or again.stderr
    assert again.changed == 0, again.changed_tasks()

    down_vars = {"aws_down_stack_name": STACK}
    down = playbook(DOWN, extra_vars=down_vars)
    assert down.rc == 0 and down.failures == 0, down.failed_messages() or down.stderr
    assert down.changed > 0
    assert ec2.describe_vpcs(Filters=TAG)["Vpcs"] == []
    assert ec2.describe_subnets(Filters=TAG)["Subnets"] == []
    assert ec2.describe_security_groups(Filters=TAG)["SecurityGroups"] == []
    left = ec2.describe_instances(Filters=[*TAG, {"Name": "instance-state-name", "Values": ["pending", "running"]}])
    assert left["Reservations"] == []
    assert elb.describe_load_balancers()["LoadBalancers"] == []
    assert elb.describe_target_groups()["TargetGroups"] == []
    assert ec2.describe_key_pairs()["KeyPairs"] == []

    down_again = playbook(DOWN, extra_vars=down_vars)
    assert down_again.rc == 0 and down_again.failures == 0, down_again.failed_messages() or down_again.stderr
    assert down_again.changed == 0, down_again.changed_tasks()


def test_bad_input_fails_early_naming_the_problem(aws, playbook, up_vars):
    world = playbook(UP, extra_vars=dict(up_vars, security_groups_admin_cidrs=["0.0.0.0/0"]))
    assert world.rc != 0
    assert any("security_groups_allow_world_admin=true" in m for m in world.failed_messages()), world.failed_messages()

    one_az = [{"cidr": "10.20.1.0/24", "az": "us-east-1a"}, {"cidr": "10.20.2.0/24", "az": "us-east-1a"}]
    single = playbook(UP, extra_vars=dict(up_vars, aws_network_public_subnets=one_az))
    assert single.rc != 0
    assert any("at least two availability zones" in m for m in single.failed_messages()), single.failed_messages()
    # Both failed before creating anything.
    assert aws.client("ec2").describe_vpcs(Filters=TAG)["Vpcs"] == []
