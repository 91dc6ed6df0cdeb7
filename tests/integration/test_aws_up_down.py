"""playbooks/aws_up.yml (provisioning part) and playbooks/aws_down.yml against moto:
up -> assert the built topology with boto3 -> up again changes nothing -> down -> nothing tagged is
left -> down again changes nothing, over HTTP (us-east-1) and with an HTTPS listener holding an ACM
certificate (eu-west-1, so nothing may assume a region). Host configuration over SSH is not part
of this file (aws_up_configure_hosts=false)."""

from __future__ import annotations

import datetime
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from moto.ec2.exceptions import DependencyViolationError
from moto.ec2.models.vpcs import VPCBackend

REPO = Path(__file__).resolve().parents[2]
UP = REPO / "playbooks" / "aws_up.yml"
DOWN = REPO / "playbooks" / "aws_down.yml"
STACK = "itup"
TAG = [{"Name": "tag:votingapp-stack", "Values": [STACK]}]
ADMIN_CIDR = "203.0.113.0/24"
WORLD = "0.0.0.0/0"
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
# vote has two hosts: they must land in two availability zones.
GROUPS = {
    "bastion": {"count": 1, "public": True},
    "vote": {"count": 2},
    "result": {"count": 1},
    "worker": {"count": 1},
    "redis": {"count": 1},
    "postgres": {"count": 1},
}


def region_env(region):
    return {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}


def make_up_vars(aws, tmp_path, region="us-east-1"):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    image = aws.client("ec2", region).describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    return {
        "aws_up_stack_name": STACK,
        "aws_up_configure_hosts": False,
        "aws_up_public_key_file": str(key) + ".pub",
        "aws_instances_image_id": image,
        "security_groups_admin_cidrs": [ADMIN_CIDR],
    }


@pytest.fixture
def up_vars(aws, tmp_path):
    return make_up_vars(aws, tmp_path)


def import_self_signed_certificate(acm, name="vote.example.test"):
    """A self-signed certificate imported into (moto's) ACM, as a user would import their own."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return acm.import_certificate(
        Certificate=cert.public_bytes(serialization.Encoding.PEM),
        PrivateKey=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )["CertificateArn"]


def sg_flows(ec2, vpc_id, direction="IpPermissions"):
    """group short name -> sorted (port, peer) list; a peer is a group short name or a CIDR."""
    groups = ec2.describe_security_groups(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}, *TAG])["SecurityGroups"]
    names = {g["GroupId"]: g["GroupName"].removeprefix(STACK + "-") for g in groups}
    matrix = {}
    for g in groups:
        flows = []
        for perm in g[direction]:
            port = perm.get("FromPort", "all")
            flows += [(port, names[p["GroupId"]]) for p in perm.get("UserIdGroupPairs", [])]
            flows += [(port, r["CidrIp"]) for r in perm.get("IpRanges", [])]
            flows += [(port, r["CidrIpv6"]) for r in perm.get("Ipv6Ranges", [])]
        matrix[names[g["GroupId"]]] = sorted(flows, key=str)
    return matrix


def flows(*pairs):
    return sorted(pairs, key=str)


def tag(instance, key):
    return next(t["Value"] for t in instance["Tags"] if t["Key"] == key)


@pytest.mark.parametrize(
    ("region", "https"), [("us-east-1", False), ("eu-west-1", True)], ids=["http-us-east-1", "https-eu-west-1"]
)
def test_aws_up_then_down(aws, playbook, tmp_path, region, https):
    ec2, elb = aws.client("ec2", region), aws.client("elbv2", region)
    env = region_env(region)
    up_vars = dict(make_up_vars(aws, tmp_path, region), aws_instances_groups=GROUPS)
    if https:
        cert_arn = import_self_signed_certificate(aws.client("acm", region))
        up_vars["alb_https_certificate_arn"] = cert_arn

    started = time.monotonic()
    first = playbook(UP, extra_vars=up_vars, env=env)
    print(f"aws_up from an empty account ({region}, https={https}): {time.monotonic() - started:.0f} s")
    assert first.rc == 0 and first.failures == 0, first.failed_messages() or first.stderr
    assert first.changed > 0

    vpc = ec2.describe_vpcs(Filters=TAG)["Vpcs"]
    assert len(vpc) == 1
    vpc_id = vpc[0]["VpcId"]
    subnets = ec2.describe_subnets(Filters=TAG)["Subnets"]
    assert len(subnets) == 4
    zones = sorted(z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"])[:2]
    public = [s for s in subnets if s["MapPublicIpOnLaunch"]]
    private = [s for s in subnets if not s["MapPublicIpOnLaunch"]]
    # The region's own zones, one public and one private subnet in each.
    assert sorted(s["AvailabilityZone"] for s in public) == zones
    assert sorted(s["AvailabilityZone"] for s in private) == zones

    # Ingress: the flows of docs/architecture.md, and nothing else.
    alb_in = [(80, WORLD), (443, WORLD)] if https else [(80, WORLD)]
    assert sg_flows(ec2, vpc_id) == {
        "alb": flows(*alb_in),
        "bastion": [(22, ADMIN_CIDR)],
        "vote": flows((22, "bastion"), (80, "alb"), (80, "bastion")),
        "result": flows((22, "bastion"), (80, "alb"), (80, "bastion")),
        "worker": flows((22, "bastion"), (9101, "bastion")),
        "redis": flows((22, "bastion"), (6379, "vote"), (6379, "worker")),
        "postgres": flows((22, "bastion"), (5432, "result"), (5432, "worker")),
    }
    # Egress: the same flows seen from their source, plus packages (80, 443) for the hosts; no allow-all.
    packages = [(80, WORLD), (443, WORLD)]
    assert sg_flows(ec2, vpc_id, "IpPermissionsEgress") == {
        "alb": flows((80, "vote"), (80, "result")),
        "bastion": flows(
            *[(22, g) for g in ("vote", "result", "worker", "redis", "postgres")],
            (80, "vote"),
            (80, "result"),
            (9101, "worker"),
            *packages,
        ),
        "vote": flows((6379, "redis"), *packages),
        "result": flows((5432, "postgres"), *packages),
        "worker": flows((6379, "redis"), (5432, "postgres"), *packages),
        "redis": flows(*packages),
        "postgres": flows(*packages),
    }

    reservations = ec2.describe_instances(Filters=[*TAG, {"Name": "instance-state-name", "Values": ["running"]}])
    instances = [i for r in reservations["Reservations"] for i in r["Instances"]]
    assert sorted(tag(i, "votingapp-group") for i in instances) == sorted(
        g for g, spec in GROUPS.items() for _copy in range(spec["count"])
    )
    public_ids = {s["SubnetId"] for s in public}
    for inst in instances:
        group = tag(inst, "votingapp-group")
        assert (inst["SubnetId"] in public_ids) == (group == "bastion"), group
        # IMDSv2 only.
        assert inst["MetadataOptions"]["HttpTokens"] == "required", (group, inst["MetadataOptions"])
        assert inst["MetadataOptions"]["HttpEndpoint"] == "enabled", (group, inst["MetadataOptions"])
    zone_of = {s["SubnetId"]: s["AvailabilityZone"] for s in subnets}
    vote_instances = [i for i in instances if tag(i, "votingapp-group") == "vote"]
    # A group of two spans both zones, and the single-host groups are spread too.
    assert sorted(zone_of[i["SubnetId"]] for i in vote_instances) == zones
    singles = [
        i
        for i in instances
        if GROUPS[tag(i, "votingapp-group")]["count"] == 1 and tag(i, "votingapp-group") != "bastion"
    ]
    assert {zone_of[i["SubnetId"]] for i in singles} == set(zones)

    lb = elb.describe_load_balancers(Names=[f"{STACK}-alb"])["LoadBalancers"][0]
    assert sorted(az["ZoneName"] for az in lb["AvailabilityZones"]) == zones
    attributes = {
        a["Key"]: a["Value"]
        for a in elb.describe_load_balancer_attributes(LoadBalancerArn=lb["LoadBalancerArn"])["Attributes"]
    }
    assert attributes["routing.http.drop_invalid_header_fields.enabled"] == "true"
    listeners = sorted(
        elb.describe_listeners(LoadBalancerArn=lb["LoadBalancerArn"])["Listeners"], key=lambda li: li["Port"]
    )
    not_found = {"StatusCode": "404", "ContentType": "text/plain", "MessageBody": "not found"}
    if https:
        assert [(li["Port"], li["Protocol"]) for li in listeners] == [(80, "HTTP"), (443, "HTTPS")]
        redirect = listeners[0]["DefaultActions"][0]
        assert redirect["Type"] == "redirect"
        assert (redirect["RedirectConfig"]["Protocol"], redirect["RedirectConfig"]["Port"]) == ("HTTPS", "443")
        assert redirect["RedirectConfig"]["StatusCode"] == "HTTP_301"
        secure = listeners[1]
        assert [c["CertificateArn"] for c in secure["Certificates"]] == [cert_arn]
        assert secure["SslPolicy"] == TLS_POLICY
        assert secure["DefaultActions"][0]["FixedResponseConfig"] == not_found
    else:
        assert [(li["Port"], li["Protocol"]) for li in listeners] == [(80, "HTTP")]
        secure = listeners[0]
        assert secure["DefaultActions"][0]["Type"] == "fixed-response"
        assert secure["DefaultActions"][0]["FixedResponseConfig"] == not_found

    tgs = {t["TargetGroupName"]: t for t in elb.describe_target_groups()["TargetGroups"]}
    assert tgs[f"{STACK}-vote"]["HealthCheckPath"] == "/"
    assert tgs[f"{STACK}-result"]["HealthCheckPath"] == "/result/"
    for name in ("vote", "result"):
        tg_attributes = {
            a["Key"]: a["Value"]
            for a in elb.describe_target_group_attributes(TargetGroupArn=tgs[f"{STACK}-{name}"]["TargetGroupArn"])[
                "Attributes"
            ]
        }
        assert tg_attributes["deregistration_delay.timeout_seconds"] == "30", name
    rules = sorted(
        (r for r in elb.describe_rules(ListenerArn=secure["ListenerArn"])["Rules"] if not r["IsDefault"]),
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
    registered = elb.describe_target_health(TargetGroupArn=tgs[f"{STACK}-vote"]["TargetGroupArn"])
    assert {d["Target"]["Id"] for d in registered["TargetHealthDescriptions"]} == {
        i["InstanceId"] for i in vote_instances
    }

    started = time.monotonic()
    again = playbook(UP, extra_vars=up_vars, env=env)
    print(f"aws_up again: {time.monotonic() - started:.0f} s")
    assert again.rc == 0 and again.failures == 0, again.failed_messages() or again.stderr
    assert again.changed == 0, again.changed_tasks()

    down_vars = {"aws_down_stack_name": STACK}
    started = time.monotonic()
    down = playbook(DOWN, extra_vars=down_vars, env=env)
    print(f"aws_down: {time.monotonic() - started:.0f} s")
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

    down_again = playbook(DOWN, extra_vars=down_vars, env=env)
    assert down_again.rc == 0 and down_again.failures == 0, down_again.failed_messages() or down_again.stderr
    assert down_again.changed == 0, down_again.changed_tasks()


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("0.0.0.0/0", "security_groups_allow_world_admin=true"),
        # The same network, spelled differently: the guard compares networks.
        ("::0/0", "security_groups_allow_world_admin=true"),
        ("0::/0", "security_groups_allow_world_admin=true"),
        ("0.0.0.0/00", "security_groups_allow_world_admin=true"),
        ("203.0.113.7/0", "security_groups_allow_world_admin=true"),
        ("10.0.0.0/33", "is not an IPv4"),
        ("office", "is not an IPv4"),
    ],
)
def test_world_or_malformed_admin_cidr_fails_before_anything_exists(aws, playbook, up_vars, cidr, message):
    run = playbook(UP, extra_vars=dict(up_vars, security_groups_admin_cidrs=[ADMIN_CIDR, cidr]))
    assert run.rc != 0
    assert any(message in m for m in run.failed_messages()), run.failed_messages()
    assert aws.client("ec2").describe_vpcs(Filters=TAG)["Vpcs"] == []


def test_bad_input_fails_early_naming_the_problem(aws, playbook, up_vars, tmp_path):
    one_az = [{"cidr": "10.20.1.0/24", "az": "us-east-1a"}, {"cidr": "10.20.2.0/24", "az": "us-east-1a"}]
    single = playbook(UP, extra_vars=dict(up_vars, aws_network_public_subnets=one_az))
    assert single.rc != 0
    assert any("at least two availability zones" in m for m in single.failed_messages()), single.failed_messages()

    # An empty key would make EC2 generate a key pair and hand back its private key.
    empty_key = tmp_path / "empty.pub"
    empty_key.write_text("")
    keyless = playbook(UP, extra_vars=dict(up_vars, aws_up_public_key_file=str(empty_key)))
    assert keyless.rc != 0
    assert any("must be the text of an OpenSSH public key" in m for m in keyless.failed_messages()), (
        keyless.failed_messages()
    )
    # Both failed before creating anything.
    assert aws.client("ec2").describe_vpcs(Filters=TAG)["Vpcs"] == []
    assert aws.client("ec2").describe_key_pairs()["KeyPairs"] == []


ALB_ALONE = """
- name: The alb role on its own
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/amazon.aws.aws: {endpoint_url: "{{ lookup('ansible.builtin.env', 'VOTINGAPP_AWS_ENDPOINT') }}"}
    group/community.aws.aws: {endpoint_url: "{{ lookup('ansible.builtin.env', 'VOTINGAPP_AWS_ENDPOINT') }}"}
  roles:
    - role: votingapp.stack.alb
      vars: %s
"""


def test_alb_required_inputs_have_no_defaults(aws, playbook, tmp_path):
    missing = tmp_path / "missing.yml"
    missing.write_text(ALB_ALONE % "{alb_vpc_id: vpc-12345678, alb_security_group_ids: [sg-12345678]}")
    run = playbook(missing)
    assert run.rc != 0
    assert any("alb_subnet_ids" in m and "required" in m for m in run.failed_messages()), run.failed_messages()

    # Empty is refused too: an empty subnet_ids list would match every subnet of the region.
    empty = tmp_path / "empty.yml"
    empty.write_text(
        ALB_ALONE % "{alb_vpc_id: vpc-12345678, alb_security_group_ids: [sg-12345678], alb_subnet_ids: []}"
    )
    run = playbook(empty)
    assert run.rc != 0
    assert any("at least two, in two availability zones" in m for m in run.failed_messages()), run.failed_messages()
    assert aws.client("elbv2").describe_load_balancers()["LoadBalancers"] == []


NETWORK_ONLY = """
- name: The network alone
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/amazon.aws.aws: {endpoint_url: "{{ lookup('ansible.builtin.env', 'VOTINGAPP_AWS_ENDPOINT') }}"}
  roles:
    - role: votingapp.stack.aws_network
      vars: {aws_network_stack_name: %s, aws_network_nat_gateway: false}
"""


def test_aws_down_waits_out_a_dependency_violation(aws, playbook, tmp_path, monkeypatch):
    """On AWS the network interfaces of a deleted ALB linger and keep their subnet and VPC in use:
    aws_down retries DependencyViolation instead of failing. Here an untagged subnet plays the
    lingering interface: it goes away once the first DeleteVpc has been refused."""
    network = tmp_path / "network.yml"
    network.write_text(NETWORK_ONLY % STACK)
    up = playbook(network)
    assert up.rc == 0, up.failed_messages() or up.stderr
    ec2 = aws.client("ec2")
    vpc_id = ec2.describe_vpcs(Filters=TAG)["Vpcs"][0]["VpcId"]
    lingering = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.99.0/24")["Subnet"]["SubnetId"]

    # The moto server runs in this process: count its DeleteVpc calls.
    refused = threading.Event()
    original = VPCBackend.delete_vpc

    def delete_vpc(self, vpc_id):
        try:
            return original(self, vpc_id)
        except DependencyViolationError:
            refused.set()
            raise

    monkeypatch.setattr(VPCBackend, "delete_vpc", delete_vpc)

    def release():
        if refused.wait(600):
            ec2.delete_subnet(SubnetId=lingering)

    releaser = threading.Thread(target=release, daemon=True)
    releaser.start()
    down = playbook(DOWN, extra_vars={"aws_down_stack_name": STACK})
    assert down.rc == 0 and down.failures == 0, down.failed_messages() or down.stderr
    assert refused.is_set()
    vpc_task = next(t for t in down.tasks() if t["task"]["name"].endswith(": VPC"))
    attempts = [item.get("attempts", 1) for r in vpc_task["hosts"].values() for item in r["results"]]
    assert attempts and attempts[0] >= 2, vpc_task
    assert ec2.describe_vpcs(Filters=TAG)["Vpcs"] == []
