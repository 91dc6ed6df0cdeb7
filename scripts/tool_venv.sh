#!/usr/bin/env bash
# Prints the path of a cached venv holding exactly the pinned set in REQUIREMENTS, creating it first
# when absent. The tools of the publishing gates (galaxy-importer, antsibull-docs, ansible-builder,
# the ansible-core matrix) each need versions that conflict with the dev venv's, so each gets its own;
# the dev venv itself (`make venv`, .venv links to it) is one too.
# The venv's name carries a hash of the interpreter version and the pin files: a changed pin gives a
# new venv, an unchanged one is reused across checkouts and runs (a fresh machine builds it once).
# Usage: scripts/tool_venv.sh NAME PYTHON REQUIREMENTS [CONSTRAINTS]
#   without CONSTRAINTS, REQUIREMENTS pins the whole set (installed with --no-deps);
#   with it, REQUIREMENTS lists the top-level packages and CONSTRAINTS pins what they resolve to.
set -euo pipefail
name=$1 python=$2 requirements=$3 constraints=${4:-}

version=$("$python" -c 'import sys; print(sys.version)') \
  || { echo "tool_venv: cannot run '$python' for $name (pyenv has 3.11 and 3.12 on this machine kind)" >&2; exit 1; }
key=$({ echo "$version"; cat "$requirements" ${constraints:+"$constraints"}; } | sha256sum | cut -c1-12)
root=${VOTINGAPP_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/votingapp/venvs}
venv=$root/$name-$key
if [ ! -e "$venv/.installed" ]; then
  mkdir -p "$root"
  # Parallel gates (make -j, two checkouts) may ask for the same venv: one builds, the others wait.
  exec 9>"$venv.lock"
  flock 9
  if [ ! -e "$venv/.installed" ]; then
    rm -rf "$venv"
    echo "tool_venv: creating $venv" >&2
    "$python" -m venv "$venv"
    # pip runs as its own process (not from ensurepip's), so it keeps the machine's pip configuration.
    if [ -n "$constraints" ]; then
      "$venv/bin/python" -m pip install -q --disable-pip-version-check -r "$requirements" -c "$constraints" >&2
    else
      "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -r "$requirements" >&2
    fi
    "$venv/bin/python" -m pip check >&2
    touch "$venv/.installed"
  fi
fi
echo "$venv"
