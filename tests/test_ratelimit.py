"""One log line per source per interval, for refused datagrams and refused API requests alike."""

from __future__ import annotations

import logging

from mediamute.api.errors import REFUSALS_LOGGED
from mediamute.ratelimit import PerSourceLimiter

from .helpers import CALLS


def test_a_source_gets_one_line_per_interval_that_counts_what_it_suppressed():
    now = [0.0]
    limiter = PerSourceLimiter(interval=10.0, clock=lambda: now[0])
    assert limiter.allow("a") == 0
    assert [limiter.allow("a") for _ in range(5)] == [None] * 5
    assert limiter.allow("b") == 0  # another source has its own budget
    now[0] = 10.0
    assert limiter.allow("a") == 5 and limiter.allow("a") is None
    assert limiter.lines == 3


def test_memory_stays_bounded_under_a_flood_of_sources():
    now = [0.0]
    limiter = PerSourceLimiter(interval=10.0, max_sources=8, clock=lambda: now[0])
    assert all(limiter.allow(("10.0.0.1", port)) == 0 for port in range(100))
    assert len(limiter) <= 8 and limiter.lines == 100


async def test_a_burst_of_bad_requests_writes_one_warning_per_status(api_http, caplog):
    REFUSALS_LOGGED._last_line.clear()  # a fresh interval for this test's client
    with caplog.at_level(logging.WARNING, logger="mediamute.api"):
        for _ in range(40):
            assert (await api_http.post(CALLS, content=b"{not json", headers={"Content-Type": "application/json"})).status_code == 400
            assert (await api_http.get(f"{CALLS}/no-such-call")).status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "mediamute.api"]
    assert len(lines) == 2, lines
    assert any("-> 400" in line for line in lines) and any("-> 404" in line for line in lines)
