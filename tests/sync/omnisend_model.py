"""Omnisend's contacts and tags, in memory, as far as a mirror sync depends on them.

An upsert keyed on the email sets the fields its body has and keeps the others; tag calls add or
remove tags from the contacts they name and silently ignore unknown emails; nothing deletes a
contact. Every call the app makes is counted in `writes`; a marketer's edits are not.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .scenarios import Observed


@dataclass
class ModelContact:
    fields: dict[str, str] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)


class OmnisendModel:
    def __init__(self) -> None:
        self.contacts: dict[str, ModelContact] = {}
        self.writes = 0

    def upsert_batch(self, bodies: list[dict], rejected: frozenset[str]) -> dict[str, bool]:
        """One POST /batches: email -> whether its item succeeded (emails in `rejected` fail)."""
        self.writes += 1
        results = {}
        for body in bodies:
            email = body["identifiers"][0]["id"]
            if email in rejected:
                results[email] = False
                continue
            contact = self.contacts.setdefault(email, ModelContact())
            contact.fields.update({k: v for k, v in body.items() if k != "identifiers"})
            results[email] = True
        return results

    def change_tags(self, emails: list[str], tags: list[str], *, add: bool, fail: bool = False) -> bool:
        """One POST or DELETE /contacts/tags; False when the call failed (nothing changed)."""
        self.writes += 1
        if fail:
            return False
        for email in emails:
            contact = self.contacts.get(email)
            if contact is not None:
                (contact.tags.update if add else contact.tags.difference_update)(tags)
        return True

    def tag_by_hand(self, email: str, tag: str) -> None:
        """A marketer adds a tag in Omnisend (creating the contact if it is not there yet)."""
        self.contacts.setdefault(email, ModelContact()).tags.add(tag)

    def observe(self) -> dict[str, Observed]:
        return {email: Observed(dict(c.fields), frozenset(c.tags)) for email, c in self.contacts.items()}
