# Copyright: (c) 2026, votingapp.stack contributors
# Apache License 2.0 (see LICENSE)
"""The stack contract's one rule for how a host is reached by the hosts of another group."""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError


def peer_address(hosts, hostvars, peer):
    """Address of the first of ``hosts`` as the hosts of group ``peer`` reach it ('' if none)."""
    if isinstance(hosts, str):
        hosts = [hosts]
    hosts = list(hosts or [])
    if not hosts:
        return ""
    if not isinstance(peer, str) or not peer:
        raise AnsibleFilterError(f"peer_address: the peer group must be a non-empty string, got {peer!r}")
    name = hosts[0]
    host = hostvars[name]
    if not isinstance(host, Mapping):
        raise AnsibleFilterError(f"peer_address: {name!r} is not an inventory host")
    per_peer = host.get("votingapp_address_for", {})
    if not isinstance(per_peer, Mapping):
        raise AnsibleFilterError(
            f"peer_address: votingapp_address_for of {name} must be a mapping of group to address, got {per_peer!r}"
        )
    if peer in per_peer:
        return str(per_peer[peer])
    for key in ("votingapp_address", "ansible_host"):
        if key in host:
            return str(host[key])
    return str(name)


class FilterModule:
    def filters(self):
        return {"peer_address": peer_address}
