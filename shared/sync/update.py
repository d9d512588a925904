"""The next state of an export: the prior state changed only by what a run verified.

A run works with one tag table, `run_tag_table(prior.tags, export_tags)`: the export's tags now,
then the prior state's tags it no longer sets (retired, still to be removed). Outcomes are
`ContactChange`s in that table's bits, one or more per contact, in ascending key order:

  - a batch item verified sent:   ContactChange(key, fingerprint=fp, email=email)
  - a tag call verified:          ContactChange(key, tagged=bits)   (with the upsert's change or alone)
  - a removal verified:           ContactChange(key, untagged=bits)
  - a contact in no segment:      ContactChange(key, forget=True)   (dropped once it carries no tag)

Anything not verified (a failed or rejected row, a row never reached because the run was cancelled
or failed, a removal held by the gate) simply has no change, so its contact keeps its prior entry and
the next run finds it `new`, `changed` or `tagOnly` again. Untouched runs of the prior state are
copied column-slice by column-slice, so the cost follows the number of changes, plus one pass that
re-compresses the email column.
"""
from __future__ import annotations

from array import array
from bisect import bisect_left
from itertools import chain
from typing import Iterable, Iterator, NamedTuple, Sequence

from ..mapping import email_key
from .errors import ChangeError
from .fingerprint import FINGERPRINT_SCHEME, NO_FINGERPRINT
from .state import MAX_TAGS, StateBuilder, StateInfo, SyncState, check_email, empty_masks, mask_width


class ContactChange(NamedTuple):
    key: int
    fingerprint: int = NO_FINGERPRINT  # the body verified sent; 0: its fields were not (re)sent
    tagged: int = 0  # bits of the run's tag table verified added
    untagged: int = 0  # bits verified removed
    email: str = ""  # required when the key is new to the state
    forget: bool = False  # drop the contact from the state when it ends up with no tag


def run_tag_table(prior_tags: Sequence[str], export_tags: Iterable[str]) -> tuple[str, ...]:
    """The export's tags (in order, once each), then the prior tags it no longer sets."""
    table = tuple(dict.fromkeys(tag for tag in export_tags if tag))
    table += tuple(tag for tag in prior_tags if tag not in table)
    mask_width(len(table))  # more than MAX_TAGS raises TooManyTagsError
    return table


def tag_bits(table: Sequence[str], tags: Iterable[str]) -> int:
    """The mask of `tags` in `table`."""
    bits = 0
    for tag in tags:
        bits |= 1 << table.index(tag)
    return bits


def next_state(prior: SyncState | None, run_tags: Sequence[str], changes: Iterable[ContactChange], *,
               run_id: str, written_at: str, full_at: str = "") -> SyncState:
    """The state after a run. `full_at`: when a full run ended (kept from the prior state otherwise)."""
    prior = prior if prior is not None else SyncState.empty()
    run_tags = tuple(run_tags)
    if len(run_tags) > MAX_TAGS or len(set(run_tags)) != len(run_tags):
        raise ChangeError(f"the run's tag table must hold at most {MAX_TAGS} distinct tags")
    lost = [tag for tag in prior.tags if tag not in run_tags]
    if lost:
        raise ChangeError(f"the run's tag table lacks tag(s) {lost} of the prior state (see run_tag_table)")
    # Fingerprints of another scheme left in the state never equal a row's, so they count as changed.
    info = StateInfo(run_tags, run_id, written_at, full_at or prior.info.last_full_at, FINGERPRINT_SCHEME)
    folded = _fold(changes)
    first = next(folded, None)
    if first is None and run_tags[:len(prior.tags)] == prior.tags and prior.masks.itemsize == mask_width(len(run_tags)):
        # Nothing verified changed: the same columns (and compressed emails) under the new header.
        return _drop_unused_tags(SyncState(info, prior.keys, prior.fingerprints, prior.masks, prior.email_lengths,
                                           prior.stored_emails))
    merged = _merge(prior, _remap(prior.masks, prior.tags, run_tags, len(run_tags)), info,
                    chain([first] if first is not None else [], folded))
    return _drop_unused_tags(merged)


def _merge(prior: SyncState, prior_masks: array, info: StateInfo, changes: Iterator[ContactChange]) -> SyncState:
    keys, fingerprints = prior.keys, prior.fingerprints
    count = len(keys)
    builder = StateBuilder(info)
    emails = prior.email_reader()
    new = _NewContacts(len(info.tags))
    add_key, add_fingerprint, add_mask, add_length, add_email = new.appenders()
    position = 0  # the first prior contact not yet copied

    def copy_to(end: int) -> None:
        """The new contacts gathered so far, then the prior ones before `end`."""
        new.flush(builder)
        if end > position:
            data, lengths = emails.take(end - position)
            builder.extend(keys[position:end], fingerprints[position:end], prior_masks[position:end], data, lengths)

    for change in changes:
        key = change.key
        i = bisect_left(keys, key, position)
        held = i < count and keys[i] == key
        if i > position or held:
            copy_to(i)
            position = i
        if held:
            mask = (prior_masks[i] | change.tagged) & ~change.untagged
            email, _ = emails.take(1)
            if not (change.forget and not mask):
                builder.append(key, change.fingerprint or fingerprints[i], mask, email)
            position = i + 1
            continue
        mask = change.tagged & ~change.untagged
        if (change.fingerprint == NO_FINGERPRINT and not mask) or (change.forget and not mask):
            continue  # nothing to keep of a contact the state did not hold
        if not change.email:
            raise ChangeError(f"contact {key:#x} is new to the state but its change has no email")
        if email_key(change.email) != key:
            raise ChangeError(f"the email of contact {key:#x} does not have that key")
        email = change.email.encode()
        check_email(key, email)  # as StateBuilder.append would
        add_key(key)
        add_fingerprint(change.fingerprint)
        add_mask(mask)
        add_length(len(email))
        add_email(email)
    copy_to(count)
    emails.check_complete()
    return builder.finish()


class _NewContacts:
    """Contacts new to the state (in key order, their emails checked), gathered between two contacts of
    the prior state and appended to the next one in one `extend`: a first run's contacts are all new,
    and appending them one at a time was a quarter of its finishing step."""

    def __init__(self, tag_count: int) -> None:
        self.keys, self.fingerprints, self.masks = array("Q"), array("Q"), empty_masks(tag_count)
        self.lengths, self.emails = array("H"), []

    def appenders(self) -> tuple:
        return (self.keys.append, self.fingerprints.append, self.masks.append, self.lengths.append,
                self.emails.append)

    def flush(self, builder: StateBuilder) -> None:
        if self.keys:
            builder.extend(self.keys, self.fingerprints, self.masks, b"".join(self.emails), self.lengths)
            for column in (self.keys, self.fingerprints, self.masks, self.lengths):
                del column[:]  # emptied in place: the appenders stay bound to them
            self.emails.clear()


def _fold(changes: Iterable[ContactChange]) -> Iterator[ContactChange]:
    """One change per key (the later fingerprint and email win, bits and forget accumulate); checks order."""
    current: ContactChange | None = None
    for change in changes:
        if current is None:
            current = change
        elif change.key == current.key:
            current = ContactChange(current.key, change.fingerprint or current.fingerprint,
                                    current.tagged | change.tagged, current.untagged | change.untagged,
                                    change.email or current.email, current.forget or change.forget)
        elif change.key < current.key:
            raise ChangeError(f"changes must come in ascending key order ({change.key:#x} after {current.key:#x})")
        else:
            yield current
            current = change
    if current is not None:
        yield current


def _remap(masks: array, old: Sequence[str], new: Sequence[str], new_count: int) -> array:
    """Masks of table `old` as masks of table `new`; bits of tags not in `new` are dropped."""
    out = empty_masks(new_count)
    if len(new) >= len(old) and tuple(old) == tuple(new[:len(old)]):
        out.extend(masks)  # the old table is a prefix of the new: same bits
        return out
    moves = [(1 << b, 1 << new.index(tag)) for b, tag in enumerate(old) if tag in new]

    class Remapped(dict):
        def __missing__(self, mask: int) -> int:
            value = self[mask] = sum(to for bit, to in moves if mask & bit)
            return value

    out.extend(map(Remapped().__getitem__, masks))
    return out


def _drop_unused_tags(state: SyncState) -> SyncState:
    """The same state without the tags no contact carries any more (e.g. a retired tag once removed)."""
    used = 0
    for mask in set(state.masks):
        used |= mask
    kept = tuple(tag for bit, tag in enumerate(state.tags) if used >> bit & 1)
    if kept == state.tags:
        return state
    masks = _remap(state.masks, state.tags, kept, len(kept))
    return SyncState(StateInfo(kept, state.info.run_id, state.info.written_at, state.info.last_full_at,
                               state.info.fingerprint_scheme),
                     state.keys, state.fingerprints, masks, state.email_lengths, state.stored_emails)
