#!/usr/bin/env python3
"""Time the first event and the end of an SSE stream through the bastion (prints JSON)."""

import http.client
import json
import sys
import time

path = sys.argv[1] if len(sys.argv) > 1 else "/result/api/stream"
start = time.monotonic()
conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=10)
conn.request("GET", path, headers={"Accept": "text/event-stream"})
resp = conn.getresponse()
seen, first = b"", None
while True:
    chunk = resp.read1(1024)
    if not chunk:
        break
    seen += chunk
    if first is None and b"data: first" in seen:
        first = time.monotonic() - start
total = time.monotonic() - start
print(json.dumps({"status": resp.status, "first_event_s": first, "total_s": total, "body": seen.decode()}))
