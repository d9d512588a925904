"""Email addresses out of log lines and messages: the client's own, and urllib3's request URLs."""
from __future__ import annotations

import logging
import re

_EMAIL_IN_TEXT = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*(@|%40)([A-Za-z0-9.-]+\.[A-Za-z]{2,})")


def mask_email(email: str) -> str:
    """'jane@example.com' -> 'j***@example.com' (for log lines and messages)."""
    local, at, domain = email.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}" if local else f"***@{domain}"


def mask_emails_in(text: str) -> str:
    """Every email address in free text masked, also URL-encoded ones (`jane%40example.com`)."""
    return _EMAIL_IN_TEXT.sub(lambda m: f"{m.group(1)}***{m.group(2)}{m.group(3)}", text)


class _MaskEmails(logging.Filter):
    """urllib3 logs request URLs at DEBUG; contact filters put emails in them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = mask_emails_in(record.getMessage())
        record.args = ()
        return True

