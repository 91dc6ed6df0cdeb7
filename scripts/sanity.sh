#!/usr/bin/env bash
# ansible-test needs the collection at .../ansible_collections/<namespace>/<name>: link the
# checkout there in a temporary directory and run sanity against the tracked and new files.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d /tmp/votingapp-sanity.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/ansible_collections/votingapp"
# A copy, not a symlink: ansible-test resolves symlinks and would land back outside the layout.
# Only files git knows (tracked or new, not ignored) are copied, so venvs and lab state stay out.
(cd "$repo" && git ls-files -co --exclude-standard -z) \
  | (cd "$repo" && xargs -0 cp --parents -t "$tmp/ansible_collections/votingapp/" 2>/dev/null || true)
mv "$tmp/ansible_collections/votingapp" "$tmp/ansible_collections/stack.tmp"
mkdir -p "$tmp/ansible_collections/votingapp"
mv "$tmp/ansible_collections/stack.tmp" "$tmp/ansible_collections/votingapp/stack"
# ansible-test bootstraps pip in its venvs with a script it downloads from a host we cannot reach;
# give it the offline equivalent under the cache name it looks for.
pip_version=$(python -c 'from ansible_test._internal.python_requirements import get_venv_packages as g
class P: version = ""
print(g(P())["pip"])')
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$cache")"
cp "$repo/scripts/ansible_test_get_pip.py" "$cache"

cd "$tmp/ansible_collections/votingapp/stack"
# ansible-test uses git to list the collection's files when it is a repository.
git init -q && git add -A >/dev/null
ansible-test sanity --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
  --exclude app_src/ --exclude molecule/ --exclude images/ --exclude scripts/ "$@"
