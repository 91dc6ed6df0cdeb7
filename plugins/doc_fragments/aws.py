# -*- coding: utf-8 -*-
# Copyright: votingapp.stack contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Shared by every AWS module of votingapp.stack; the connection options themselves come
    # from the amazon.aws fragments so they stay identical to amazon.aws modules.
    DOCUMENTATION = r"""
options: {}
notes:
  - The module belongs to the action group C(votingapp.stack.aws), so C(module_defaults) for
    C(group/votingapp.stack.aws) sets the connection options (O(endpoint_url), O(region), ...)
    once, the same way as C(group/amazon.aws.aws).
  - Every API call is retried with jittered exponential backoff on throttling and transient errors.
  - Tested against a moto server (see C(docs/aws.md) in the collection); moto never runs health checks.
requirements:
  - python >= 3.8
  - boto3 >= 1.34.0
  - botocore >= 1.34.0
"""
