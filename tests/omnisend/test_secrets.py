"""The API key never shows up in logs, exception text or reprs; emails in log lines are masked."""
from __future__ import annotations

import logging

import pytest

from shared.omnisend import AuthenticationError, OmnisendClient, OmnisendError, mask_email, mask_emails_in
from shared.ratelimit import SlidingWindowLimiter


def contact(email: str) -> dict:
    return {"identifiers": [{"type": "email", "id": email, "sendWelcomeMessage": False}]}


def test_mask_email():
    assert mask_email("jane@example.com") == "j***@example.com"
    assert mask_email("@example.com") == "***@example.com"
    assert mask_email("no-at-sign") == "***"
    assert mask_emails_in("GET /api/contacts?email=jane%40example.com") == "GET /api/contacts?email=j***%40example.com"


def test_key_appears_in_no_log_line_exception_or_repr(sandbox, omnisend_key, caplog):
    """Drive every code path that logs or raises, capturing all loggers at DEBUG."""
    caplog.set_level(logging.DEBUG)
    failures: list[OmnisendError] = []
    with OmnisendClient(omnisend_key, limiter=SlidingWindowLimiter(), base_url=sandbox.url, timeout=0.2,
                        max_retries=1,
                        backoff_seconds=0.01) as client:
        client.check_key()
        client.upsert_contact(contact("jane.doe@example.com"))
        list(client.iter_contacts(email="jane.doe@example.com"))
        sandbox.set_faults(item_error_emails={"jane.doe@example.com"})
        client.get_batch_items(client.create_contact_batch([contact("jane.doe@example.com")]))
        for faults in ({"error_rate": 1.0}, {"drop_rate": 1.0}, {"slow_rate": 1.0, "slow_seconds": 0.4},
                       {"rate_limit_storm": 1}):
            sandbox.set_faults(**faults)
            with pytest.raises(OmnisendError) as caught:
                client.add_tags(["jane.doe@example.com"], ["vip"])
            failures.append(caught.value)
        sandbox.set_faults()
        with pytest.raises(OmnisendError) as caught:
            client.upsert_contact({"identifiers": [{"type": "email", "id": "jane.doe@"}]})
        failures.append(caught.value)
        texts = [repr(client), str(vars(client)), caplog.text]
    with OmnisendClient(omnisend_key + "x", limiter=SlidingWindowLimiter(), base_url=sandbox.url) as stranger:
        with pytest.raises(AuthenticationError) as caught:
            stranger.check_key()
        failures.append(caught.value)
        texts.append(repr(stranger))
    texts += [str(e) for e in failures] + [repr(e) for e in failures] + [str(vars(e)) for e in failures]
    secret = omnisend_key.split("-", 1)[1]
    assert "DEBUG" in caplog.text and len(failures) == 6  # the paths above really ran
    for text in texts:
        assert omnisend_key not in text and secret not in text
    assert "jane.doe@example.com" not in caplog.text and "jane.doe%40example.com" not in caplog.text
    assert "j***@example.com" in caplog.text or "j***%40example.com" in caplog.text


def test_sandbox_problem_bodies_never_echo_the_key(sandbox, sandbox_api, omnisend_key):
    revoked = sandbox.add_key("brand1", retired=True)
    for key in (omnisend_key + "0", revoked):
        answer = sandbox_api("GET", "/contacts", key=key)
        assert answer.status_code == 401 and key not in answer.text
    assert omnisend_key not in str(sandbox.state())
