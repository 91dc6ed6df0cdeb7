#!/usr/bin/env bash
# Acceptance check for distribution: build the tarball, prove it carries no venv/cache/lab/compose state,
# install it offline into an empty path and run votingapp.stack.docker from a playbook outside
# the repository against a throwaway systemd host container.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d /tmp/votingapp-build.XXXXXX)
trap 'rm -rf "$work"' EXIT

ansible-galaxy collection build "$repo" --output-path "$work" --force >/dev/null
tarball=$(ls "$work"/votingapp-stack-*.tar.gz)
echo "built $(basename "$tarball") ($(du -h "$tarball" | cut -f1))"

listing=$(tar -tzf "$tarball")
forbidden=$(echo "$listing" | grep -E '(^|/)(\.venv|\.cache|\.lab|\.compose|\.git|__pycache__|\.pytest_cache|\.ruff_cache|\.ansible)(/|$)' || true)
if [ -n "$forbidden" ]; then
  echo "tarball carries files it must not ship:" >&2; echo "$forbidden" | head -20 >&2; exit 1
fi
for required in MANIFEST.json meta/runtime.yml roles/docker/meta/argument_specs.yml app_src/Dockerfile; do
  grep -qx "$required" <<<"$listing" || { echo "tarball lacks $required" >&2; exit 1; }
done

# Offline install: dependencies come from the ansible package already in the venv.
ANSIBLE_COLLECTIONS_PATH="$work/collections" \
  ansible-galaxy collection install "$tarball" -p "$work/collections" --offline --force >/dev/null
test -f "$work/collections/ansible_collections/votingapp/stack/roles/docker/tasks/main.yml"

# A throwaway systemd host able to run its own engine (every capability but SYS_RESOURCE).
host=votingapp-build-check
docker rm -f "$host" >/dev/null 2>&1 || true
trap 'docker rm -f "$host" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
docker run -d --name "$host" --cap-add ALL --cap-drop SYS_RESOURCE \
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
  --tmpfs /run --tmpfs /run/lock -v /sys/fs/cgroup:/sys/fs/cgroup:rw -v /var/lib/docker \
  votingapp-host-docker:bookworm >/dev/null

mkdir -p "$work/project"
cat > "$work/project/play.yml" <<'PLAY'
- name: Use votingapp.stack from an installed tarball
  hosts: all
  gather_facts: true
  roles:
    - role: votingapp.stack.docker
  post_tasks:
    - name: The engine the role started answers
      ansible.builtin.command: docker info --format '{{ "{{" }} .LoggingDriver {{ "}}" }}'
      register: engine
      changed_when: false
      failed_when: engine.stdout != 'json-file'
PLAY
# Only the installed copy is on the collections path here, never the checkout.
(cd "$work/project" && ANSIBLE_COLLECTIONS_PATH="$work/collections" \
  ansible-playbook -i "$host," -c community.docker.docker play.yml >"$work/play.log" 2>&1) \
  || { cat "$work/play.log" >&2; echo "playbook from the installed collection failed" >&2; exit 1; }
grep -q 'failed=0' "$work/play.log"
echo "installed $(basename "$tarball") offline; a playbook outside the repository ran votingapp.stack.docker from it"
