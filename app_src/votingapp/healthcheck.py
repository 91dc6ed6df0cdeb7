"""Container HEALTHCHECK: asks the running service's /healthz on loopback.

One image runs three commands, so the check looks at PID 1's command line to know which port
to ask: the web services listen on PORT, the worker serves /healthz on METRICS_PORT.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def main() -> int:
    try:
        with open("/proc/1/cmdline", "rb") as fh:
            cmdline = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        cmdline = ""
    if "worker" in cmdline:
        port = os.environ.get("METRICS_PORT", "9100")
    elif "migrate" in cmdline:
        return 0
    else:
        port = os.environ.get("PORT", "8080")
    url = f"http://127.0.0.1:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck {url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
