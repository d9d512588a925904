"""The screenshots of the pages that list what was made (README's tour), from a world of this module's own.

The journeys' pages list whatever the tests before them made, and differ with the tests selected. Here
the stack (conftest: one per module) holds only this world, so an unchanged console gives the same
pages, and with check_page's pinned timestamps the same PNGs, on every run and in any test selection.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.console.conftest import DESKTOP, MOBILE


@pytest.fixture(scope="module")
def world(stack) -> dict[str, str]:
    """Two connections (one shared with contributors), two exports, one run that ended with rejects."""
    shop = stack.connection("Webshop EU", "adminsAndContributors")
    internal = stack.connection("Internal store", "admins")
    weekly, _ = stack.export("Weekly VIPs", shop["id"], ("Vip", "Newsletter"), runOn=["schedule"])
    stack.export("High value customers", internal["id"], ("HighValue",), runOn=["upload"], tagContacts=False)
    run = stack.run_to_end(weekly["id"])
    assert run["status"] == "partiallySucceeded", run
    return {"weekly": weekly["id"]}


# (screenshot, role, page, viewport, text the page must show once it has loaded)
PAGES = [
    ("exports", "admin", "/#/exports", DESKTOP, "Partly succeeded"),
    ("runs", "admin", "/#/exports/{weekly}/runs", DESKTOP, "100%"),
    ("connections", "admin", "/#/connections", DESKTOP, "Internal store"),
    ("connections-contributor", "contributor", "/#/connections", DESKTOP, "Webshop EU"),
    ("exports-360", "admin", "/#/exports", MOBILE, "High value customers"),
]


@pytest.mark.parametrize("name, role, path, viewport, shows", PAGES, ids=[page[0] for page in PAGES])
def test_tour(open_page, check_page, world, name, role, path, viewport, shows):
    page = open_page(role, path.format(**world), viewport=viewport)
    expect(page.locator("main")).to_contain_text(shows)
    check_page(page, name, screenshot=True)
