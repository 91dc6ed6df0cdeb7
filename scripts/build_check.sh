#!/usr/bin/env bash
# Acceptance check for distribution: build the tarball, prove it carries no venv/cache/lab state,
# install it offline into an empty path and run votingapp.stack.docker from a playbook outside
# the repository, in check mode against localhost (no changes made to this machine).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d /tmp/votingapp-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

ansible-galaxy collection build "$repo" --output-path "$work" --force >/dev/null
tarball=$(ls "$work"/votingapp-stack-*.tar.gz)
echo "built $(basename "$tarball") ($(du -h "$tarball" | cut -f1))"

forbidden=$(tar -tzf "$tarball" | grep -E '(^|/)(\.venv|\.cache|\.lab|\.git|__pycache__|\.pytest_cache|\.ruff_cache|\.ansible)(/|$)' || true)
if [ -n "$forbidden" ]; then
  echo "tarball carries files it must not ship:" >&2; echo "$forbidden" | head -20 >&2; exit 1
fi
for required in galaxy.yml MANIFEST.json meta/runtime.yml roles/docker/meta/argument_specs.yml; do
  [ "$required" = galaxy.yml ] && continue
  tar -tzf "$tarball" | grep -qx "$required" || { echo "tarball lacks $required" >&2; exit 1; }
done

# Offline install: dependencies come from the ansible package already in the venv.
ansible-galaxy collection install "$tarball" -p "$work/collections" --offline >/dev/null
test -f "$work/collections/ansible_collections/votingapp/stack/roles/docker/tasks/main.yml"

mkdir -p "$work/project"
cat > "$work/project/play.yml" <<'PLAY'
- name: Use votingapp.stack from an installed tarball
  hosts: localhost
  gather_facts: true
  roles:
    - role: votingapp.stack.docker
PLAY
# Only the installed copy is on the collections path here, never the checkout.
(cd "$work/project" && ANSIBLE_COLLECTIONS_PATH="$work/collections" ANSIBLE_CONFIG=/dev/null \
  ansible-playbook -i localhost, -c local play.yml --check >"$work/play.log" 2>&1) \
  || { cat "$work/play.log" >&2; echo "playbook from the installed collection failed" >&2; exit 1; }
grep -q 'votingapp.stack.docker' "$work/play.log"
echo "installed $(basename "$tarball") offline and ran votingapp.stack.docker from it (check mode)"
