#!/usr/bin/env bash
# ansible-test needs the collection at .../ansible_collections/<namespace>/<name>: copy the
# checkout there in a temporary directory and run sanity against the tracked and new files.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d /tmp/votingapp-sanity.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
collection="$tmp/ansible_collections/votingapp/stack"
mkdir -p "$collection"
# A copy, not a symlink: ansible-test resolves symlinks and would land back outside the layout.
# Only files git knows (tracked or new, not ignored) are copied, so venvs and lab state stay out.
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$collection")
# ansible-test bootstraps pip in its venvs with a script it downloads from a host we cannot reach;
# give it the offline equivalent under the cache name it looks for.
pip_version=$(python -c 'from ansible_test._internal.python_requirements import get_venv_packages as g
class P: version = ""
print(g(P())["pip"])')
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$cache")"
cp "$repo/scripts/ansible_test_get_pip.py" "$cache"

# The dependencies (bundled with the ansible package) beside the collection, so the import and
# validate-modules tests resolve amazon.aws and community.aws from the same tree.
deps=$(python -c 'import ansible_collections.amazon as a, os; print(os.path.dirname(list(a.__path__)[0]))')
for ns in amazon community ansible; do ln -s "$deps/$ns" "$tmp/ansible_collections/$ns"; done

cd "$collection"
# ansible-test uses git to list the collection's files when it is a repository.
git init -q && git add -A >/dev/null
ansible-test sanity --python "$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
  --exclude app_src/ --exclude molecule/ --exclude images/ --exclude scripts/ "$@"
