"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test bootstraps pip into each sanity virtualenv by running a get-pip script it fetches from
ci-files.testing.ansible.com, which is unreachable on our machines. It looks for a cached copy first
(~/.ansible/test/cache/get_pip_<version>.py); scripts/sanity.sh installs this file there. It does
what get-pip does, from parts that are here: ensurepip's bundled pip, then `pip install` of the
pinned pip that ansible-test asked for (from the configured package index).
"""

import ensurepip
import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}

if __name__ == "__main__":
    ensurepip.bootstrap(upgrade=True)
    pip_args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
    sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *pip_args]))
