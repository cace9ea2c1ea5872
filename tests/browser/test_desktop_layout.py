"""Headless Chromium at desktop width: what a newcomer walking the demo first noticed, a filter
bar of page-wide selects with a date squeezed between them, table columns squeezed until a
word broke ("activ|e", "Languag|es"), and a 404 for /favicon.ico in the console of every
page."""

from __future__ import annotations

import pytest

from telehealth.accounts.models import Role
from telehealth.extensions import db
from tests.conftest import screenshot, sign_in, take_consult

pytestmark = pytest.mark.browser

# One rectangle per line: a text node on one line has one client rect.
LINES_OF_EACH_WORD = """cells => cells.flatMap(cell => {
  const out = [];
  const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  let node;
  while ((node = walker.nextNode())) {
    const re = /\\S+/g; let m;
    while ((m = re.exec(node.textContent))) {
      const range = document.createRange();
      range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
      const lines = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
      if (lines.size > 1) out.push(m[0]);
    }
  }
  return out;
})"""


def test_roster_and_dashboard_read_well_at_desktop_width(live_server, browser, world,
                                                         make_user):
    # The demo's roster: long e-mails, several specialties and languages, long zone names.
    for name, zone in (("Dr Amina Okafor", "America/Toronto"), ("Dra Ana Souza",
                                                                 "America/Sao_Paulo")):
        make_user(Role.SPECIALIST, name=name, timezone=zone,
                  email=f"{name.split()[-2].lower()}.{name.split()[-1].lower()}@example.org",
                  specialties=("obstetrics", "paediatrics", "dermatology"),
                  languages=("en", "es", "pt"))
    context = browser.new_context(viewport={"width": 860, "height": 900})
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        sign_in(page, live_server, world["coordinator"].email)
        filters = page.locator("#consult-filters").bounding_box()
        assert filters is not None and filters["height"] < 160, filters  # a row or two
        page.goto(f"{live_server}/roster")
        page.wait_for_selector("#roster tr.specialist")
        screenshot(page, "roster-desktop")
        broken = page.locator("#roster th, #roster td").evaluate_all(LINES_OF_EACH_WORD)
        assert broken == [], f"words split across lines: {broken}"
        assert errors == [], errors
    finally:
        context.close()


def test_number_tables_stay_readable_on_a_phone(live_server, browser, world, make_consult):
    """At 360 px the situation room's figures were cards: the caption ran one letter a line
    and each row was a column of bare numbers; the load report's counts had no label."""
    take_consult(make_consult(world["clinician"]), world["specialist"])
    db.session.commit()
    context = browser.new_context(viewport={"width": 360, "height": 740})
    try:
        page = context.new_page()
        sign_in(page, live_server, world["coordinator"].email)
        page.goto(f"{live_server}/situation")
        caption = page.locator("#table-speed_urgency caption")
        box = caption.bounding_box()
        assert box is not None and box["height"] < 80 and box["width"] > 150, box
        assert page.evaluate("document.documentElement.scrollWidth") <= 360
        assert page.locator("#table-speed_urgency").evaluate(
            "t => getComputedStyle(t).display") == "table"
        page.goto(f"{live_server}/roster/load")
        screenshot(page, "load-report-phone")
        label = page.locator("#load td[data-label]").first.evaluate(
            "td => getComputedStyle(td, '::before').content")
        assert "Last 30 days" in label
    finally:
        context.close()
