"""votingapp_http_responses_total: every response counted by service and status code, under real
gunicorn (several workers, multiprocess metrics), exactly."""

from __future__ import annotations

import requests
from harness import Service, free_port
from prometheus_client.parser import text_string_to_metric_families


def _responses(url: str) -> dict:
    text = requests.get(f"{url}/metrics", timeout=5).text
    return {
        (s.labels["service"], s.labels["code"]): s.value
        for family in text_string_to_metric_families(text)
        if family.name == "votingapp_http_responses"
        for s in family.samples
        if s.name == "votingapp_http_responses_total"
    }


def test_vote_counts_responses_by_code(workdir):
    # Redis unreachable: the votes answer 503, which the outcome counter also sees, and /readyz
    # answers 503, which only the response counter sees.
    svc = Service(
        "vote",
        {
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(free_port()),
            "PORT": str(free_port()),
            "BIND_ADDRESS": "127.0.0.1",
            "GUNICORN_WORKERS": "2",
        },
        workdir,
        "vote-http-metrics",
    ).start()
    try:
        # Only the start-up checks' /healthz (200) so far.
        before = _responses(svc.url)
        assert list(before) == [("vote", "200")]
        for _ in range(3):
            assert requests.post(f"{svc.url}/api/vote", json={"vote": "Cats"}, timeout=10).status_code == 503
        assert requests.get(f"{svc.url}/readyz", timeout=10).status_code == 503
        for _ in range(2):
            assert requests.post(f"{svc.url}/api/vote", json={"vote": "Fish"}, timeout=10).status_code == 400
        assert requests.get(f"{svc.url}/healthz", timeout=5).status_code == 200
        # New 200s: the first /metrics read (counted once answered) and this test's /healthz.
        assert _responses(svc.url) == {
            ("vote", "503"): 4.0,
            ("vote", "400"): 2.0,
            ("vote", "200"): before[("vote", "200")] + 2,
        }
    finally:
        svc.stop()
