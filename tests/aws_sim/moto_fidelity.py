"""Where moto 5.2 answers differently from AWS in a way our playbooks notice, make it answer like AWS.

Imported by tests/integration/conftest.py (in-process moto server) and scripts/aws_sim.py (the
emulated account) before the server starts. Each patch names the AWS behaviour it restores.
"""

from __future__ import annotations

import functools

from moto.elbv2 import models as elbv2_models

# AWS returns every load balancer attribute, with its default, from DescribeLoadBalancerAttributes;
# moto returns only a few. amazon.aws.elb_application_lb reads the current value of each attribute
# it is asked to set and fails with a KeyError when the attribute is missing.
ALB_DEFAULT_ATTRIBUTES = {
    "routing.http.drop_invalid_header_fields.enabled": "false",
}


def apply():
    """Idempotent: patch moto's classes once per process."""
    cls = elbv2_models.FakeLoadBalancer
    if getattr(cls, "_votingapp_patched", False):
        return
    original = cls.__init__

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        for key, value in ALB_DEFAULT_ATTRIBUTES.items():
            self.attrs.setdefault(key, value)

    cls.__init__ = init
    cls._votingapp_patched = True
