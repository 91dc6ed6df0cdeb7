"""votingapp.stack.alb's `rotation` entry point (what app_container calls around a replacement on
EC2) against moto: `out` deregisters the instance and waits until it is unused, `in` registers it
and waits until healthy, each a second time with nothing to change, and a deployment without the
target group (the bastion-only topology) is left alone."""

from __future__ import annotations

import json

ROTATION = """
- name: ALB rotation of one instance
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Rotate
      ansible.builtin.include_role:
        name: votingapp.stack.alb
        tasks_from: rotation
      vars:
        alb_rotation_endpoint_url: "{{ lookup('ansible.builtin.env', 'VOTINGAPP_AWS_ENDPOINT') }}"
        alb_rotation_region: us-east-1
        alb_deregistration_delay: 5
        alb_wait_timeout: 60
"""


def registered(elb, arn):
    return sorted(
        (d["Target"]["Id"], d["Target"]["Port"], d["TargetHealth"]["State"])
        for d in elb.describe_target_health(TargetGroupArn=arn)["TargetHealthDescriptions"]
    )


def test_rotation_out_and_in_of_the_target_group(aws, playbook, tmp_path):
    ec2, elb = aws.client("ec2"), aws.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24")["Subnet"]["SubnetId"]
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    instances = ec2.run_instances(ImageId=image, MinCount=2, MaxCount=2, SubnetId=subnet)["Instances"]
    ids = [i["InstanceId"] for i in instances]
    tg = elb.create_target_group(Name="rot-vote", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")
    arn = tg["TargetGroups"][0]["TargetGroupArn"]
    elb.register_targets(TargetGroupArn=arn, Targets=[{"Id": i, "Port": 80} for i in ids])
    book = tmp_path / "rotation.yml"
    book.write_text(ROTATION)

    def rotate(state, group="rot-vote"):
        target = {"alb_rotation_target_group": group, "alb_rotation_instance_id": ids[0]}
        run = playbook(book, extra_vars={"alb_rotation_state": state, **target})
        assert run.rc == 0 and run.failures == 0, run.failed_messages() or run.stderr
        return run

    out = rotate("out")
    assert out.changed == 1, out.changed_tasks
    assert [t[0] for t in registered(elb, arn)] == [ids[1]], "the other instance keeps serving, this one is gone"
    assert rotate("out").changed == 0

    back = rotate("in")
    assert back.changed == 1, back.changed_tasks
    assert registered(elb, arn) == sorted((i, 80, "healthy") for i in ids)
    assert rotate("in").changed == 0

    # No load balancer, no target group: nothing to take out, nothing fails.
    missing = rotate("out", group="rot-nothing")
    assert missing.changed == 0
    assert json.dumps(registered(elb, arn)).count("healthy") == 2
