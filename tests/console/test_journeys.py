"""The console in a real browser: the journeys of an admin, a contributor and a caller without a role.

Every page is scanned by axe-core (check_page), and the forms, the segments and the screens of callers
who cannot use the console are photographed into docs/; the pages that list what was made are
photographed by test_tour.py, from a world of its own. Console errors, calls outside the OpenAPI
document and requests to other origins fail the test (conftest.open_page).
"""
from __future__ import annotations

import csv
import io
import re
import threading
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.console.conftest import MOBILE
from tools.sample_export import DEFAULT_MAPPING


@pytest.fixture(scope="module")
def shared_connections(stack):
    """One connection usable by contributors, one by admins only, and an export on the shared one."""
    shared = stack.connection("Shared shop", "adminsAndContributors")
    internal = stack.connection("Internal store", "admins")
    export, _ = stack.export("Weekly VIPs", shared["id"], ("Vip", "Newsletter"))
    return {"shared": shared, "internal": internal, "export": export}


def rejects_of(stack, run_id: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(stack.call("GET", f"runs/{run_id}/rejects").text)))


def test_admin_adds_a_connection_refused_without_consent_and_with_a_bad_key(open_page, stack, check_page):
    page = open_page("admin", "/#/connections")
    page.get_by_role("link", name="Add connection").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Add a connection")
    page.get_by_label("Display name").fill("Webshop EU")
    page.get_by_label("Admins and contributors").check()
    good_key = stack.sandbox.add_key("brand-webshop")
    page.get_by_label("API key").fill(good_key)
    expect(page.get_by_label("API key")).to_have_attribute("type", "password")
    check_page(page, "connection-form", screenshot=True)

    page.get_by_role("button", name="Connect").click()  # without "I agree"
    summary = page.locator(".form-summary")
    expect(summary).to_contain_text("Agree to the data-privacy statement to connect")
    consent = page.locator("[data-field-box=consent]")
    expect(consent.locator(".error")).to_have_text("Must be true.")
    expect(summary).to_be_focused()

    page.get_by_label("I agree").check()
    page.get_by_label("API key").fill("brand-webshop-not-a-key")
    page.get_by_role("button", name="Connect").click()
    expect(summary).to_contain_text("Omnisend refused the API key")
    expect(summary).to_contain_text("The API key is invalid")  # Omnisend's own words
    expect(page.locator("[data-field-box=apiKey] .error")).to_have_text("Was rejected by Omnisend.")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    check_page(page, "connection-refused", screenshot=True)

    page.get_by_label("API key").fill(good_key)
    page.get_by_role("button", name="Connect").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connections")
    expect(page.locator(".notice")).to_contain_text("Webshop EU")
    row = page.get_by_role("row").filter(has_text="Webshop EU")
    expect(row).to_contain_text("Admins and contributors")
    assert good_key not in page.content()  # never shown again
    saved = [item for item in stack.call("GET", "connections").json()["connections"] if item["displayName"] == "Webshop EU"]
    assert len(saved) == 1 and saved[0]["usableBy"] == "adminsAndContributors"
    check_page(page, "connections")


def test_admin_creates_an_export_by_picking_columns_runs_it_and_downloads_the_rejects(
        open_page, stack, check_page, shared_connections):
    page = open_page("admin", "/#/exports")
    page.get_by_role("link", name="New export").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New export")
    expect(page.get_by_label("Email")).to_be_disabled()  # no segment chosen: no columns yet
    page.get_by_label("Display name").fill("VIPs to Omnisend")
    page.get_by_label("Connection").select_option(label="Shared shop")
    page.get_by_label("Vip", exact=True).check()
    for label, column in (("Email", "PrimaryEmail"), ("First name", "FirstName"), ("Last name", "LastName"),
                          ("Country/Region", "Country"), ("City", "City"), ("Post code", "PostCode")):
        page.get_by_label(label).select_option(column)
    # A column is offered only when every chosen segment has it.
    options = page.get_by_label("Email").locator("option").all_inner_texts()
    assert "PrimaryEmail" in options and "LifetimeValue" in options
    page.get_by_label("Schedule", exact=True).uncheck()
    page.get_by_label("Upload").uncheck()
    expect(page.get_by_label("Tag for Vip")).to_have_value("Vip")  # the segment's name, unless changed
    page.get_by_label("Tag for Vip").fill("VIP customers")
    check_page(page, "export-form", screenshot=True)
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Exports")
    expect(page.locator(".notice")).to_contain_text("Saving does not run it")
    row = page.get_by_role("row").filter(has_text="VIPs to Omnisend")
    expect(row).to_contain_text("Never run")
    expect(row).to_contain_text("On demand only")
    saved = next(item for item in stack.call("GET", "exports").json()["exports"] if item["displayName"] == "VIPs to Omnisend")
    assert saved["mapping"] == {"email": "PrimaryEmail", "firstName": "FirstName", "lastName": "LastName",
                                "country": "Country", "city": "City", "postalCode": "PostCode"}
    assert saved["segments"] == ["Vip"] and saved["runOn"] == [] and saved["tags"] == {"Vip": "VIP customers"}
    check_page(page, "exports")

    row.get_by_role("button", name="Run now: VIPs to Omnisend").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Runs of “VIPs to Omnisend”")
    run_row = page.locator("tbody tr").first
    try:
        expect(run_row.locator("progress")).to_have_attribute("value", "100", timeout=120_000)
    except AssertionError as error:
        runs = stack.call("GET", f"exports/{saved['id']}/runs").json()["runs"]
        raise AssertionError(f"the run did not reach 100%: {runs}") from error
    expect(run_row.locator(".percent")).to_have_text("100%")
    expect(run_row.locator(".badge")).to_have_text("Partly succeeded")
    run = stack.call("GET", f"exports/{saved['id']}/runs").json()["runs"][0]
    counts = run["counts"]
    assert counts["rows"] == 40 and counts["rejected"] > 0
    expect(run_row).to_contain_text(f"40 rows: {counts['sent']} sent, {counts['rejected']} rejected, {counts['failed']} failed")
    check_page(page, "runs")

    with page.expect_download() as download_info:
        run_row.get_by_role("button", name="Download rejects (CSV)").click()
    download = download_info.value
    assert download.suggested_filename == f"rejects-{run['runId']}.csv"
    downloaded = list(csv.DictReader(io.StringIO(open(download.path(), encoding="utf-8").read())))
    assert len(downloaded) == counts["rejected"] + counts["failed"]
    assert downloaded == rejects_of(stack, run["runId"])
    assert all(item["reason"] for item in downloaded)


def test_a_running_export_can_be_cancelled_and_is_not_started_twice(open_page, stack, shared_connections):
    export, _ = stack.export("Slow export", shared_connections["internal"]["id"], ("Newsletter",))
    stack.sandbox.set_faults(slow_rate=1.0, slow_seconds=1.0)  # every Omnisend answer takes a second
    try:
        page = open_page("admin", f"/#/exports/{export['id']}/runs")
        expect(page.locator(".empty")).to_contain_text("No runs yet")
        page.get_by_role("button", name="Run now").click()
        row = page.locator("tbody tr").first
        expect(row.locator(".badge")).to_have_text(re.compile("Queued|Running"))
        page.get_by_role("button", name="Run now").click()
        expect(page.get_by_role("alert")).to_contain_text("already has a run in progress")
        row.get_by_role("button", name="Cancel run").click()
        expect(row.locator(".badge")).to_have_text("Cancelled")
        expect(row.get_by_role("button", name="Cancel run")).to_have_count(0)
        assert stack.call("GET", f"exports/{export['id']}/runs").json()["runs"][0]["status"] == "cancelled"
    finally:
        stack.sandbox.set_faults()


def test_run_now_in_a_mode_and_a_preview_shows_its_report_without_sending(open_page, stack, check_page,
                                                                         shared_connections):
    export, _ = stack.export("Previewed VIPs", shared_connections["internal"]["id"], ("Vip",),
                             tags={"Vip": "Previewed VIPs"})
    first = stack.run_to_end(export["id"])
    page = open_page("admin", f"/#/exports/{export['id']}/runs")
    page.get_by_label("Mode").select_option("full")
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    full_row = page.locator("tbody tr").first
    expect(full_row).to_contain_text("Run now · full")
    expect(full_row.locator(".badge")).to_have_text(re.compile("Succeeded|Partly succeeded"), timeout=60_000)
    before = len(stack.sandbox.request_log())

    page.get_by_label("Mode").select_option("preview")
    page.get_by_role("button", name="Run now").click()
    expect(page.locator("tbody tr")).to_have_count(3)
    row = page.locator("tbody tr").first
    expect(row).to_contain_text("Run now · preview")
    expect(row.locator(".badge")).to_have_text("Succeeded", timeout=60_000)
    expect(row).to_contain_text("nothing sent")
    row.get_by_role("button", name="Show preview report").click()

    report = page.locator(".preview-report")
    expect(report.get_by_role("heading", level=2)).to_be_focused()
    valid = first["counts"]["rows"] - first["counts"]["rejected"]
    expect(report.locator('tr[data-class="unchanged"]')).to_contain_text(str(valid))
    expect(report.locator('tr[data-class="new"]')).to_contain_text("0")
    expect(report).to_contain_text("nobody left a segment")
    assert [r for r in stack.sandbox.request_log()[before:] if r.method != "GET"] == []
    check_page(page, "runs-preview")


def test_a_failed_run_says_why_in_words(open_page, stack):
    key = stack.sandbox.add_key("brand-revoked")
    connection = stack.connection("Store with a revoked key", key=key)
    export, _ = stack.export("Export on a revoked key", connection["id"])
    stack.sandbox.add_key("brand-revoked", retired=True, key=key)  # revoked in Omnisend after connecting
    page = open_page("admin", "/#/exports")
    page.get_by_role("button", name="Run now: Export on a revoked key").click()
    row = page.locator("tbody tr").first
    expect(row.locator(".badge")).to_have_text("Failed", timeout=30_000)
    expect(row.locator(".run-error")).to_contain_text("revoked")
    expect(row).to_contain_text("No rejects")


def test_field_errors_from_the_api_are_shown_beside_their_fields(open_page, shared_connections, check_page):
    page = open_page("admin", "/#/exports/new")
    page.get_by_role("button", name="Save").click()
    summary = page.locator(".form-summary")
    expect(summary).to_contain_text("The request has invalid fields")
    expect(page.locator("[data-field-box=displayName] .error")).to_contain_text("not blank")
    expect(page.locator("[data-field-box=connectionId] .error")).to_be_visible()
    expect(page.locator("[data-field-box=segments] .error")).to_contain_text("Must have 1 to 100 items")
    expect(page.get_by_label("Display name")).to_have_attribute("aria-invalid", "true")
    summary.get_by_role("link", name="Segments").click()  # the summary links to the field
    expect(page.locator("[data-field-box=segments] input").first).to_be_focused()
    check_page(page, "export-form-errors", screenshot=True)


def test_an_export_gets_its_own_schedule_with_errors_beside_its_fields_and_shows_its_next_run(
        open_page, stack, shared_connections, check_page):
    page = open_page("admin", "/#/exports/new")
    page.get_by_label("Display name").fill("Morning VIPs")
    page.get_by_label("Connection").select_option(label="Shared shop")
    page.get_by_label("Vip", exact=True).check()
    page.get_by_label("Upload").uncheck()
    expect(page.get_by_label("Cron expression")).to_be_hidden()  # following the app's schedule
    page.get_by_label("Its own schedule").check()
    page.get_by_label("Cron expression").fill("0 0 25 * * *")
    page.get_by_label("Time zone").fill("Europe/Vilnus")
    page.get_by_role("button", name="Save").click()

    expect(page.locator("[data-field-box='schedule.cron'] .error")).to_contain_text("25 is out of range 0-23")
    expect(page.locator("[data-field-box='schedule.timeZone'] .error")).to_contain_text("not an IANA time zone name")
    expect(page.get_by_label("Time zone")).to_have_attribute("aria-invalid", "true")
    check_page(page, "export-form-schedule-errors")
    page.get_by_label("Cron expression").fill("0 0 6 * * *")
    page.get_by_label("Time zone").fill("Europe/Vilnius")
    page.get_by_role("button", name="Save").click()

    # "Weekly VIPs" on the same connection tags Vip contacts "Vip" already: the tag field says so.
    expect(page.locator(".form-summary")).to_contain_text("Another export on the connection sets the same tag")
    expect(page.locator("[data-field-box='tags.Vip'] .error")).to_contain_text("set by export 'Weekly VIPs'")
    expect(page.get_by_label("Tag for Vip")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Tag for Vip").fill("Morning VIPs")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Exports")
    saved = next(item for item in stack.call("GET", "exports").json()["exports"] if item["displayName"] == "Morning VIPs")
    assert saved["schedule"] == {"cron": "0 0 6 * * *", "timeZone": "Europe/Vilnius"} and saved["nextRunAt"]
    assert saved["tags"] == {"Vip": "Morning VIPs"}
    row = page.get_by_role("row").filter(has_text="Morning VIPs")
    expect(row.locator("[data-label='Next run'] time")).to_have_attribute("datetime", saved["nextRunAt"])
    expect(row).to_contain_text("0 0 6 * * * (Europe/Vilnius)")
    page.goto(page.url.split("#")[0] + f"#/exports/{saved['id']}/edit")
    expect(page.get_by_label("Time zone")).to_have_value("Europe/Vilnius")
    page.get_by_label("Follow the app’s schedule").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile("Runs of"))
    assert stack.call("GET", f"exports/{saved['id']}").json()["schedule"] is None
    assert stack.call("GET", f"exports/{saved['id']}").json()["tags"] == {"Vip": "Morning VIPs"}  # kept by an edit


def test_an_export_maps_birthdate_gender_and_a_custom_property_and_a_bad_name_is_shown_beside_it(
        open_page, stack, shared_connections, check_page):
    page = open_page("admin", "/#/exports/new")
    page.get_by_label("Display name").fill("VIPs with their value")
    page.get_by_label("Connection").select_option(label="Shared shop")
    page.get_by_label("Vip", exact=True).check()
    page.get_by_label("Email").select_option("PrimaryEmail")
    page.get_by_label("Birthdate").select_option("LastPurchaseDate")
    page.get_by_label("Gender").select_option("FirstName")
    page.get_by_role("button", name="Add a custom property").click()
    row = page.locator(".custom-row").first
    expect(row.get_by_label("Name")).to_be_focused()  # the new row takes the keyboard
    row.get_by_label("Name").fill("lifetime value")
    row.get_by_label("Column").select_option("LifetimeValue")
    row.get_by_label("Type").select_option("number")
    expect(row.get_by_label("Separator")).to_be_hidden()  # lists only
    row.get_by_label("When a value cannot be converted").select_option("omit")
    page.get_by_label("Tag for Vip").fill("VIPs by value")
    page.get_by_role("button", name="Save").click()

    error = row.locator("[data-field-box$='.name'] .error")
    expect(error).to_contain_text("Latin letters, digits and _")
    expect(error).to_contain_text("lifetime_value")
    expect(row.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    page.locator(".form-summary").get_by_role("link", name="Name").click()
    expect(row.get_by_label("Name")).to_be_focused()
    check_page(page, "export-form-custom-errors")
    row.get_by_label("Name").fill("lifetime_value")
    page.get_by_role("button", name="Add a custom property").click()
    page.get_by_role("button", name="Remove custom property 2").click()
    expect(page.locator(".custom-row")).to_have_count(1)
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Exports")
    saved = next(item for item in stack.call("GET", "exports").json()["exports"]
                 if item["displayName"] == "VIPs with their value")
    assert saved["mapping"] == {"email": "PrimaryEmail", "birthdate": "LastPurchaseDate", "gender": "FirstName",
                                "customProperties": {"lifetime_value": {"column": "LifetimeValue", "type": "number",
                                                                        "onInvalid": "omit"}}}
    page.goto(page.url.split("#")[0] + f"#/exports/{saved['id']}/edit")
    row = page.locator(".custom-row").first
    expect(row.get_by_label("Name")).to_have_value("lifetime_value")
    expect(row.get_by_label("Column")).to_have_value("LifetimeValue")
    expect(row.get_by_label("When a value cannot be converted")).to_have_value("omit")
    expect(page.get_by_label("Gender")).to_have_value("FirstName")
    check_page(page, "export-form-custom")


def test_an_edit_after_someone_else_changed_the_export_says_so(open_page, stack, shared_connections):
    export, etag = stack.export("Edited twice", shared_connections["shared"]["id"], tags={"Vip": "Edited twice"})
    page = open_page("admin", f"/#/exports/{export['id']}/edit")
    expect(page.get_by_label("Display name")).to_have_value("Edited twice")
    expect(page.get_by_label("Email")).to_have_value(DEFAULT_MAPPING["email"])
    changed = {key: export[key] for key in ("connectionId", "segments", "mapping", "runOn", "tagContacts", "tags")}
    stack.call("PUT", f"exports/{export['id']}", {**changed, "displayName": "Changed by a colleague"},
               headers={"If-Match": etag})
    page.get_by_label("Display name").fill("My change")
    page.get_by_role("button", name="Save").click()
    summary = page.locator(".form-summary")
    expect(summary).to_contain_text("Someone else changed this export")
    expect(summary).to_contain_text("Your changes were not saved")
    assert stack.call("GET", f"exports/{export['id']}").json()["displayName"] == "Changed by a colleague"
    summary.get_by_role("button", name="Load their version").click()
    expect(page.get_by_label("Display name")).to_have_value("Changed by a colleague")


def test_deleting_a_connection_in_use_names_the_exports_that_block_it(open_page, shared_connections):
    page = open_page("admin", "/#/connections")
    row = page.get_by_role("row").filter(has_text="Shared shop")
    row.get_by_role("button", name="Delete Shared shop").click()
    expect(row.get_by_role("button", name="Delete it")).to_be_focused()
    row.get_by_role("button", name="Delete it").click()
    refusal = row.get_by_role("alert")
    expect(refusal).to_contain_text("is used by")
    expect(refusal.get_by_role("link", name="Weekly VIPs")).to_have_attribute(
        "href", f"#/exports/{shared_connections['export']['id']}/edit")


def test_an_export_is_deleted_only_after_confirming_and_escape_cancels(open_page, stack, shared_connections):
    export, _ = stack.export("To be deleted", shared_connections["internal"]["id"])
    page = open_page("admin", "/#/exports")
    row = page.get_by_role("row").filter(has_text="To be deleted")
    row.get_by_role("button", name="Delete To be deleted").click()
    expect(row.get_by_role("button", name="Delete it")).to_be_focused()
    page.keyboard.press("Escape")
    expect(row.get_by_role("button", name="Run now: To be deleted")).to_be_focused()
    stack.call("GET", f"exports/{export['id']}")
    row.get_by_role("button", name="Delete To be deleted").click()
    expect(row.get_by_role("checkbox", name="Also remove the tags it added in Omnisend")).not_to_be_checked()
    row.get_by_role("button", name="Delete it").click()
    expect(page.locator(".notice")).to_contain_text("“To be deleted” deleted")
    expect(page.get_by_role("row").filter(has_text="To be deleted")).to_have_count(0)
    stack.call("GET", f"exports/{export['id']}", expect=404)


def test_an_export_deleted_with_its_tags_runs_their_removal_and_goes_when_it_succeeds(open_page, stack, check_page):
    connection = stack.connection("Leaving shop", key=stack.sandbox.add_key("brand-leaving"))
    export, _ = stack.export("Leaving VIPs", connection["id"], tags={"Vip": "Leaving VIP"})
    tagged = lambda: {e for e, tags in stack.sandbox.all_tags("brand-leaving").items() if "Leaving VIP" in tags}  # noqa: E731
    assert stack.run_to_end(export["id"])["counts"]["sent"] > 0 and tagged()
    contacts, before = set(stack.sandbox.all_tags("brand-leaving")), tagged()

    page = open_page("admin", "/#/exports")
    row = page.get_by_role("row").filter(has_text="Leaving VIPs")
    row.get_by_role("button", name="Delete Leaving VIPs").click()
    remove_tags = row.get_by_role("checkbox", name="Also remove the tags it added in Omnisend")
    expect(remove_tags).not_to_be_checked()  # by default Omnisend stays as it is
    check_page(page, "export-delete")
    remove_tags.check()
    row.get_by_role("button", name="Delete it").click()

    expect(page).to_have_url(re.compile(f"#/exports/{export['id']}/runs$"))
    expect(page.locator(".notice").first).to_contain_text("Removing the tags of “Leaving VIPs” from Omnisend")
    run = page.locator("tbody tr[data-run-id]").first
    expect(run).to_contain_text("Delete (removing tags)")
    expect(page.get_by_role("status").filter(has_text="“Leaving VIPs” is deleted")).to_be_visible(timeout=60_000)
    expect(run.locator(".badge")).to_have_text("Succeeded")
    expect(run).to_contain_text(f"{len(before)} contacts lost a segment tag")
    stack.call("GET", f"exports/{export['id']}", expect=404)
    assert tagged() == set() and set(stack.sandbox.all_tags("brand-leaving")) == contacts  # contacts stay


def test_a_tag_removal_shown_succeeded_before_its_export_went_still_ends_in_deleted(open_page, stack, monkeypatch):
    from shared.runs import deletion

    shown = threading.Event()
    delete = deletion._delete

    def after_the_page_showed_it(store, export_id):  # the run is stored succeeded; its export goes later
        shown.wait(30)
        delete(store, export_id)

    monkeypatch.setattr(deletion, "_delete", after_the_page_showed_it)
    connection = stack.connection("Slowly leaving shop")
    export, _ = stack.export("Slowly leaving", connection["id"], tags={"Vip": "Slowly leaving"})
    stack.run_to_end(export["id"])
    page = open_page("admin", "/#/exports")
    row = page.get_by_role("row").filter(has_text="Slowly leaving")
    row.get_by_role("button", name="Delete Slowly leaving").click()
    row.get_by_role("checkbox", name="Also remove the tags it added in Omnisend").check()
    row.get_by_role("button", name="Delete it").click()

    expect(page.locator("tbody tr[data-run-id]").first.locator(".badge")).to_have_text("Succeeded", timeout=60_000)
    shown.set()
    expect(page.get_by_role("status").filter(has_text="“Slowly leaving” is deleted")).to_be_visible()


def test_the_runs_of_an_export_that_no_longer_exists_say_so(open_page):
    page = open_page("admin", "/#/exports/deleted-meanwhile/runs")  # e.g. its tag removal ended before the page
    expect(page.get_by_role("heading", level=1)).to_have_text("Export not found")
    expect(page.get_by_text("deletes it once the run removing them has succeeded")).to_be_visible()
    expect(page.get_by_role("link", name="All exports")).to_have_attribute("href", "#/exports")


def test_contributor_sees_only_the_shared_connection_and_cannot_add_one(open_page, shared_connections, check_page):
    page = open_page("contributor", "/#/connections")
    expect(page.locator("#who")).to_have_text("contributor@contoso.com · Contributor")
    table = page.get_by_role("table")
    expect(table).to_contain_text("Shared shop")
    expect(table).not_to_contain_text("Internal store")
    expect(page.get_by_role("link", name="Add connection")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^Delete"))).to_have_count(0)
    check_page(page, "connections-contributor")

    page.goto(page.url.split("#")[0] + "#/connections/new")
    expect(page.get_by_role("alert")).to_contain_text("Only admins can add connections")

    page.get_by_role("link", name="Exports").click()
    page.get_by_role("link", name="New export").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New export")
    options = page.get_by_label("Connection").locator("option").all_inner_texts()
    assert "Shared shop" in options and "Internal store" not in options


def test_the_console_learns_who_is_calling_from_api_me_and_changes_nothing_to_find_out(open_page):
    page = open_page("admin", "/#/segments")
    calls = []
    page.on("request", lambda request: calls.append((request.method, urlsplit(request.url).path)))
    page.reload()
    expect(page.locator("#who")).to_have_text("admin@contoso.com · Admin")
    page.wait_for_load_state("networkidle")
    api_calls = [call for call in calls if call[1].startswith("/api/")]
    assert api_calls[0] == ("GET", "/api/me"), api_calls
    assert {method for method, _ in api_calls} == {"GET"}, api_calls


def test_a_caller_without_a_role_gets_the_explanation(open_page, check_page):
    page = open_page("norole", "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("You have no role in this app")
    expect(page.locator("main")).to_contain_text("Exports.Admin")
    expect(page.locator("main")).to_contain_text("this needs the Exports.Admin or Exports.Contributor role")
    expect(page.get_by_role("navigation")).to_be_hidden()
    check_page(page, "no-role", screenshot=True)


def test_an_unreadable_principal_is_asked_to_sign_in(open_page):
    page = open_page("admin", "/", principal="not base64!")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in to use the console")
    expect(page.get_by_role("link", name="Sign in")).to_have_attribute("href", "/.auth/login/aad?post_login_redirect_uri=/")


def test_segments_show_layout_columns_and_the_exports_that_cannot_be_read(open_page, stack, check_page):
    stack.segments.upload_blob("CustomerInsights_broken/Half/model.json", b"{not json", overwrite=True)
    page = open_page("contributor", "/#/segments")
    table = page.get_by_role("table")
    expect(table.get_by_role("row").filter(has_text="HighValue")).to_contain_text("Customer Insights export")
    expect(table.get_by_role("row").filter(has_text="Vip")).to_contain_text("Plain CSV")
    expect(table.get_by_role("row").filter(has_text="Vip")).to_contain_text("12 columns: CustomerId, FirstName")
    expect(page.get_by_role("alert")).to_contain_text("cannot be read")
    expect(page.get_by_role("alert")).to_contain_text("CustomerInsights_broken/Half/model.json")
    check_page(page, "segments", screenshot=True)
    stack.segments.delete_blob("CustomerInsights_broken/Half/model.json")


def test_keyboard_only_an_admin_adds_a_connection(open_page, stack):
    page = open_page("admin", "/#/exports")

    def tab_to(name: str, limit: int = 60):
        for _ in range(limit):
            page.keyboard.press("Tab")
            focused = page.evaluate("""() => { const e = document.activeElement;
                return (e.labels && e.labels[0] && e.labels[0].firstChild.textContent) || e.getAttribute('aria-label') || e.textContent.trim(); }""")
            if focused == name:
                return
        pytest.fail(f"Tab never reached {name!r}")

    tab_to("Skip to content")
    tab_to("Connections")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_be_focused()
    tab_to("Add connection")
    page.keyboard.press("Enter")
    tab_to("Display name")
    page.keyboard.type("Keyboard shop")
    tab_to("Admins only")
    page.keyboard.press("ArrowDown")  # radios move with the arrow keys
    expect(page.get_by_label("Admins and contributors")).to_be_checked()
    tab_to("API key")
    page.keyboard.type(stack.sandbox.add_key("brand-keyboard"))
    tab_to("I agree")
    page.keyboard.press("Space")
    tab_to("Connect")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Connections")
    expect(page.get_by_role("row").filter(has_text="Keyboard shop")).to_contain_text("Admins and contributors")


@pytest.mark.parametrize("role, path", [
    ("admin", "/#/exports"), ("admin", "/#/exports/new"), ("admin", "/#/connections"), ("admin", "/#/connections/new"),
    ("contributor", "/#/segments"), ("contributor", "/#/exports"),
])
def test_every_page_is_readable_360_px_wide(open_page, check_page, shared_connections, role, path):
    page = open_page(role, path, viewport=MOBILE)
    page.wait_for_load_state("networkidle")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{path} is {overflow}px wider than 360 px"
    check_page(page, path)


def test_held_tag_removals_are_shown_and_approved_from_the_run(open_page, stack, check_page):
    from tools.sample_export import ProfileSlice, generate_profiles, write_plain_segment

    population = generate_profiles(30, seed=21, bad_share=0.0, duplicate_share=0.0)
    emails = [population.expected(i).email for i in range(30)]
    connection = stack.connection("Gated shop", "adminsAndContributors", key=stack.sandbox.add_key("brand-gated"))
    tagged = lambda: {e for e, c in stack.sandbox.contacts("brand-gated").items() if "Gated" in c["tags"]}  # noqa: E731
    write_plain_segment(stack.segments, "Gated", ProfileSlice(population, 0, 30))
    try:
        export, _ = stack.export("Gated tags", connection["id"], ("Gated",), role="contributor")
        stack.run_to_end(export["id"])
        write_plain_segment(stack.segments, "Gated", ProfileSlice(population, 10, 20))  # 10 of 30 leave: 33%
        held = stack.run_to_end(export["id"])
        assert held["removalsHeld"]["tags"][0]["leavers"] == 10 and tagged() == set(emails)

        page = open_page("contributor", f"/#/exports/{export['id']}/runs")
        row = page.locator(f"tbody tr[data-run-id='{held['runId']}']")
        expect(row.locator(".badge")).to_have_text("Partly succeeded")
        expect(row.locator(".held")).to_contain_text("“Gated”: 10 contacts left its segment (33.33% of 30)")
        check_page(page, "runs-held")
        row.get_by_role("button", name="Approve removals").click()
        expect(row.locator(".approval")).to_contain_text("10 contacts lost the tag", timeout=60_000)
        expect(row.get_by_role("button", name="Approve removals")).to_have_count(0)
        run = stack.call("GET", f"runs/{held['runId']}", role="contributor").json()
        assert run["removalsApproved"]["by"] == "contributor@contoso.com" and run["removalsApproved"]["removed"] == 10
        assert tagged() == set(emails[10:])
    finally:
        stack.segments.delete_blob("Gated.csv")
