"""Rate limits, retries and faults: the client against a misbehaving sandbox, over real HTTP."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.omnisend import OmnisendClient, RateLimitedError, TransientError
from shared.ratelimit import SlidingWindowLimiter, shared_limiter


def contact(email: str) -> dict:
    return {"identifiers": [{"type": "email", "id": email, "sendWelcomeMessage": False}]}


def test_429_carries_retry_after_and_the_work_succeeds_after_waiting(sandbox, omnisend_client):
    sandbox.set_faults(rate_limit_storm=1)
    with pytest.raises(RateLimitedError) as caught:
        omnisend_client.upsert_contact(contact("later@example.com"))
    assert caught.value.retry_after == 1.0 and caught.value.status == 429
    assert len(sandbox.request_log()) == 1  # never retried inside the client
    assert sandbox.contacts() == {}
    time.sleep(caught.value.retry_after)
    created, _ = omnisend_client.upsert_contact(contact("later@example.com"))
    assert created and "later@example.com" in sandbox.contacts()


@pytest.mark.sandbox(window_seconds=2.0, requests_per_minute=3)
def test_sandbox_window_429_gives_retry_after_from_the_body(sandbox, omnisend_key):
    # A limiter far above the sandbox budget, so the sandbox's own sliding window answers 429.
    roomy = SlidingWindowLimiter(100, 100, window_seconds=2.0)
    with OmnisendClient(omnisend_key, base_url=sandbox.url, limiter=roomy) as client:
        for _ in range(3):
            client.check_key()
        with pytest.raises(RateLimitedError) as caught:
            client.check_key()
        assert 1 <= caught.value.retry_after <= 2
        time.sleep(caught.value.retry_after)
        client.check_key()
    assert sandbox.rate_limited_count == 1


def test_5xx_are_retried_until_success(sandbox, omnisend_client):
    sandbox.set_faults(error_rate=0.5, seed=3)
    for i in range(10):
        omnisend_client.upsert_contact(contact(f"r{i}@example.com"))
    statuses = [r.status for r in sandbox.request_log()]
    assert any(s >= 500 for s in statuses), "the fault injector never fired: the test proves nothing"
    assert len(sandbox.contacts()) == 10
    assert omnisend_client.request_count == len(statuses)


def test_persistent_5xx_surface_as_transient_after_bounded_retries(sandbox, omnisend_key):
    sandbox.set_faults(error_rate=1.0)
    with OmnisendClient(omnisend_key, limiter=SlidingWindowLimiter(), base_url=sandbox.url, max_retries=2,
                        backoff_seconds=0.01) as client:
        with pytest.raises(TransientError) as caught:
            client.create_contact_batch([contact("x@example.com")])
    assert caught.value.status in (500, 502, 503) and "after 3 attempts" in str(caught.value)
    assert len(sandbox.request_log()) == 3


def test_timeouts_are_retried_then_succeed(sandbox, omnisend_key):
    sandbox.set_faults(slow_rate=0.5, slow_seconds=0.3, seed=1)
    with OmnisendClient(omnisend_key, limiter=SlidingWindowLimiter(), base_url=sandbox.url, timeout=0.1,
                        max_retries=8,
                        backoff_seconds=0.01) as client:
        for i in range(4):
            client.upsert_contact(contact(f"t{i}@example.com"))
        assert client.request_count > 4, "no request was slow: the test proves nothing"
    assert {f"t{i}@example.com" for i in range(4)} <= set(sandbox.contacts())


def test_persistent_timeouts_surface_as_transient(sandbox, omnisend_key):
    sandbox.set_faults(slow_rate=1.0, slow_seconds=0.5)
    with OmnisendClient(omnisend_key, limiter=SlidingWindowLimiter(), base_url=sandbox.url, timeout=0.1,
                        max_retries=1,
                        backoff_seconds=0.01) as client:
        with pytest.raises(TransientError, match="no answer within 0.1 s") as caught:
            client.check_key()
        assert caught.value.status is None and client.request_count == 2


def test_dropped_connections_are_retried(sandbox, omnisend_client):
    sandbox.set_faults(drop_rate=0.5, seed=2)
    for i in range(6):
        omnisend_client.upsert_contact(contact(f"d{i}@example.com"))
    assert any(r.status == 0 for r in sandbox.request_log()), "no connection was dropped"
    assert len(sandbox.contacts()) == 6


def test_persistent_resets_surface_as_transient(sandbox, omnisend_key):
    sandbox.set_faults(drop_rate=1.0)
    with OmnisendClient(omnisend_key, limiter=SlidingWindowLimiter(), base_url=sandbox.url, max_retries=2,
                        backoff_seconds=0.01) as client:
        with pytest.raises(TransientError, match="connection failed"):
            client.get_brand()
    assert [r.status for r in sandbox.request_log()] == [0, 0, 0]


@pytest.mark.sandbox(window_seconds=1.0, requests_per_minute=8)
def test_limiter_keeps_one_process_under_the_budget(sandbox, omnisend_key):
    """Four threads and two clients of one key share the process budget; the sandbox log is the judge."""
    limiter = SlidingWindowLimiter(8, 8, window_seconds=1.0, margin_seconds=0.2)  # room for a loaded CI
    clients = [OmnisendClient(omnisend_key, base_url=sandbox.url, limiter=limiter) for _ in range(2)]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: clients[i % 2].check_key(), range(24)))
    for client in clients:
        client.close()
    times = [r.time for r in sandbox.request_log()]
    assert len(times) == 24 and sandbox.rate_limited_count == 0
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    assert busiest <= 8
    assert times[-1] - times[0] >= 2.0  # 24 requests at 8 per second need at least two full windows


def test_a_client_needs_a_chosen_limiter(omnisend_key):
    with pytest.raises(TypeError, match="limiter"):
        OmnisendClient(omnisend_key)


def test_the_process_window_is_one_per_key(sandbox, omnisend_key):
    assert shared_limiter(omnisend_key, sandbox.url) is shared_limiter(omnisend_key, sandbox.url + "/")
    assert shared_limiter(omnisend_key, sandbox.url) is not shared_limiter(sandbox.add_key("brand2"), sandbox.url)


def test_the_chosen_limiter_governs_the_client(sandbox, omnisend_key):
    one_a_minute = SlidingWindowLimiter(1, 1, max_wait_seconds=0)
    with OmnisendClient(omnisend_key, limiter=one_a_minute, base_url=sandbox.url) as client:
        client.check_key()
        with pytest.raises(RateLimitedError, match="client-side general budget spent"):
            client.check_key()
    assert len(sandbox.request_log()) == 1
