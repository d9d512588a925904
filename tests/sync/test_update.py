"""The next state: only verified outcomes change it; tags are remapped, retired and forgotten."""
from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from shared.mapping import email_key
from shared.sync import ChangeError, ContactChange, StateInfo, SyncState, next_state, run_tag_table, tag_bits

from .conftest import make_state


def entries(state: SyncState) -> dict[str, tuple[int, set[str]]]:
    return {email: (state.fingerprints[i], {t for b, t in enumerate(state.tags) if state.masks[i] >> b & 1})
            for i, email in enumerate(state.iter_emails())}


def after(prior, run_tags, changes, **options):
    return next_state(prior, run_tags, sorted(changes, key=lambda c: c.key), run_id="run-2",
                      written_at="2026-03-20T02:00:00Z", **options)


def test_only_verified_outcomes_change_the_state(vip_state):
    run_tags = run_tag_table(vip_state.tags, ["Vip", "News"])
    before = entries(vip_state)
    nxt = after(vip_state, run_tags, [
        ContactChange(email_key("a@example.com"), fingerprint=111, email="a@example.com"),  # upsert verified
        ContactChange(email_key("d@example.com"), tagged=tag_bits(run_tags, ["News"])),  # tag call verified
        ContactChange(email_key("n@example.com"), fingerprint=222, tagged=1, email="n@example.com"),  # new
        ContactChange(email_key("c@example.com"), untagged=tag_bits(run_tags, ["Vip"])),  # removal verified
    ])
    assert entries(nxt) == {
        "a@example.com": (111, {"Vip"}),
        "b@example.com": before["b@example.com"],  # failed, rejected or unreached: no change, kept as it was
        "c@example.com": (before["c@example.com"][0], {"News"}),
        "d@example.com": (before["d@example.com"][0], {"News"}),
        "n@example.com": (222, {"Vip"}),
    }
    assert nxt.info.run_id == "run-2" and nxt.info.written_at == "2026-03-20T02:00:00Z"


def test_no_changes_keeps_every_entry(vip_state):
    nxt = after(vip_state, vip_state.tags, [])
    assert entries(nxt) == entries(vip_state) and nxt.tags == vip_state.tags and nxt.info.run_id == "run-2"
    assert entries(SyncState.from_bytes(nxt.to_bytes())) == entries(vip_state)
    # A new tag of the export that no one carries yet is not kept in the table.
    assert after(vip_state, ("Vip", "News", "Fresh"), []).tags == ("Vip", "News")


def test_several_changes_of_one_contact_fold(vip_state):
    key = email_key("d@example.com")
    nxt = after(vip_state, vip_state.tags, [ContactChange(key, fingerprint=5, email="d@example.com"),
                                            ContactChange(key, tagged=1), ContactChange(key, tagged=2)])
    assert entries(nxt)["d@example.com"] == (5, {"Vip", "News"})


def test_rename_moves_the_tag_and_drops_the_old_once_removed(vip_state):
    run_tags = run_tag_table(vip_state.tags, ["VIP members", "News"])
    assert run_tags == ("VIP members", "News", "Vip")
    carriers = ["a@example.com", "b@example.com", "c@example.com"]
    added = [ContactChange(email_key(e), tagged=tag_bits(run_tags, ["VIP members"])) for e in carriers]
    removed = [ContactChange(email_key(e), untagged=tag_bits(run_tags, ["Vip"])) for e in carriers[:2]]
    half = after(vip_state, run_tags, added + removed)  # the removal from c@ was not verified
    assert entries(half)["c@example.com"][1] == {"VIP members", "News", "Vip"}
    assert half.tags == ("VIP members", "News", "Vip")
    done = after(half, run_tag_table(half.tags, ["VIP members", "News"]),
                 [ContactChange(email_key("c@example.com"), untagged=tag_bits(half.tags, ["Vip"]))])
    assert done.tags == ("VIP members", "News")  # no one carries Vip any more
    assert {e: tags for e, (_, tags) in entries(done).items()} == {
        "a@example.com": {"VIP members"}, "b@example.com": {"VIP members"}, "c@example.com": {"VIP members", "News"},
        "d@example.com": set()}


def test_forget_drops_contacts_once_they_carry_no_tag(vip_state):
    forget = [ContactChange(email_key(e), forget=True) for e in ("b@example.com", "d@example.com")]
    removal = [ContactChange(email_key("b@example.com"), untagged=1)]
    nxt = after(vip_state, vip_state.tags, forget + removal)
    assert set(entries(nxt)) == {"a@example.com", "c@example.com"}
    kept = after(vip_state, vip_state.tags, forget)  # b@'s removal was held: it stays until removed
    assert set(entries(kept)) == {"a@example.com", "b@example.com", "c@example.com"}


def test_full_run_time_is_kept_until_the_next_full_run(vip_state):
    full = after(vip_state, vip_state.tags, [], full_at="2026-03-20T02:30:00Z")
    assert full.info.last_full_at == "2026-03-20T02:30:00Z"
    assert after(full, full.tags, []).info.last_full_at == "2026-03-20T02:30:00Z"


def test_bad_changes(vip_state):
    with pytest.raises(ChangeError, match="no email"):
        after(vip_state, vip_state.tags, [ContactChange(email_key("n@example.com"), fingerprint=1)])
    with pytest.raises(ChangeError, match="does not have that key"):
        after(vip_state, vip_state.tags, [ContactChange(email_key("n@example.com"), fingerprint=1, email="m@example.com")])
    too_long = "n" * 0x10000 + "@example.com"
    with pytest.raises(ChangeError, match=f"an email of {len(too_long)} bytes cannot be stored"):
        after(vip_state, vip_state.tags, [ContactChange(email_key(too_long), fingerprint=1, email=too_long)])
    with pytest.raises(ChangeError, match="ascending key order"):
        next_state(vip_state, vip_state.tags, [ContactChange(5, tagged=1), ContactChange(4, tagged=1)],
                   run_id="r", written_at="")
    with pytest.raises(ChangeError, match=r"lacks tag\(s\) \['News'\]"):
        after(vip_state, ("Vip",), [])
    # A removal or forget for a contact the state never held is nothing to keep, not an error.
    assert len(after(vip_state, vip_state.tags, [ContactChange(email_key("z@example.com"), untagged=1, forget=True)])) == 4


@settings(max_examples=80, deadline=None)
@given(st.dictionaries(st.integers(0, 40), st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3),
                                                  st.booleans(), st.booleans()), max_size=25),
       st.sets(st.integers(0, 40), max_size=25))
def test_matches_a_plain_dict_model(change_specs, prior_members):
    """next_state equals applying the same changes to a dict, for any mix of changes."""
    tags = ("A", "B")
    prior = SyncState.from_entries([(f"u{i}@x.com", 1000 + i, i % 4) for i in prior_members], StateInfo(tags))
    model = {f"u{i}@x.com": (1000 + i, i % 4) for i in prior_members}
    changes = []
    for i, (tagged, untagged, fp_choice, upsert, forget) in change_specs.items():
        email = f"u{i}@x.com"
        fp = 5000 + fp_choice if upsert else 0
        changes.append(ContactChange(email_key(email), fp, tagged, untagged, email if upsert or tagged else "", forget))
        old = model.get(email)
        mask = ((old[1] if old else 0) | tagged) & ~untagged
        if (old is None and not fp and not mask) or (forget and not mask):
            model.pop(email, None)
            continue
        model[email] = (fp or (old[0] if old else 0), mask)
    nxt = after(prior, tags, changes)

    def named(mask: int, table) -> set[str]:
        return {tag for bit, tag in enumerate(table) if mask >> bit & 1}

    assert {e: (nxt.fingerprints[i], named(nxt.masks[i], nxt.tags)) for i, e in enumerate(nxt.iter_emails())} == \
        {e: (fp, named(mask, tags)) for e, (fp, mask) in model.items()}
    assert SyncState.from_bytes(nxt.to_bytes()).keys == nxt.keys
