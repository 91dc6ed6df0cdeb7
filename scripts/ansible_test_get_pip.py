"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

ansible-test bootstraps pip into each sanity virtualenv by running a get-pip script it fetches from
ci-files.testing.ansible.com, which is unreachable on our machines. It looks for a cached copy first
(~/.ansible/test/cache/get_pip_<version>.py); scripts/sanity.sh installs this file there. It does
what get-pip does, from parts that are here: ensurepip's bundled pip, then `pip install` of the
pinned pip that ansible-test asked for, from the package index this machine is configured for.

ensurepip.bootstrap() deletes every PIP_* variable and sets PIP_CONFIG_FILE=/dev/null in this
process's environment (CPython bpo-19734, bpo-20053: its own install must not depend on the user's
pip settings). The second step is a pip run by the user, so it gets the environment as it was:
otherwise pip ignores /etc/pip.conf (the machine's CA bundle, index, proxy) and fails with
CERTIFICATE_VERIFY_FAILED wherever the index is reached through the machine's own CA.
"""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}


def main(argv):
    user_environment = dict(os.environ)
    try:
        ensurepip.bootstrap(upgrade=True)
    finally:
        os.environ.clear()
        os.environ.update(user_environment)
    pip_args = [arg for arg in argv if arg not in GET_PIP_ONLY_FLAGS]
    return subprocess.call([sys.executable, "-m", "pip", "install", *pip_args], env=user_environment)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
