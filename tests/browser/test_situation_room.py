"""Headless Chromium: a coordinator's situation room keeps its filters in the URL, follows a
consult submitted in another browser without a reload, and hands out a chart's CSV; the room
in English and in Arabic (right to left) is saved as screenshots."""

from __future__ import annotations

from pathlib import Path

import pytest

from telehealth.extensions import db
from tests.conftest import screenshot, sign_in

pytestmark = pytest.mark.browser

DEMAND_CELL = """([language, count]) => Array.from(
    document.querySelectorAll('#table-demand tbody tr')).some(row => {
        const cells = Array.from(row.cells).map(cell => cell.textContent.trim());
        return cells[1] === language && cells[2] === count;
    })"""


def test_situation_room_filters_live_demand_and_csv(live_server, browser, world):
    coordinator_context, clinic_context = browser.new_context(), browser.new_context()
    try:
        room = coordinator_context.new_page()
        sign_in(room, live_server, world["coordinator"].email)
        room.click("header nav >> text=Situation room")
        room.select_option("select[name=specialty]", "dermatology")
        room.select_option("select[name=period]", "30")
        room.click("#situation-filters button[type=submit]")
        room.wait_for_url("**/situation?period=30*specialty=dermatology*")
        room.reload()
        assert room.input_value("select[name=specialty]") == "dermatology"
        assert room.input_value("select[name=period]") == "30"
        room.wait_for_selector("html[data-situation=live]", state="attached")
        room.evaluate("() => { window.notReloaded = true; }")
        # The dermatologist reads French: one eligible, no consult waiting.
        assert room.evaluate(DEMAND_CELL, ["Français", "0"])

        clinic = clinic_context.new_page()
        sign_in(clinic, live_server, world["clinician"].email)
        clinic.goto(f"{live_server}/consults/new")
        clinic.fill("#patient_ref", "GOMA-0077")
        clinic.fill("#patient_age_years", "40")
        clinic.fill("#presenting_problem", "A spreading rash on both legs.")
        clinic.fill("#question", "Which diagnosis, which treatment?")
        clinic.select_option("#specialty", label="Dermatology")
        clinic.click("#submit")
        clinic.wait_for_url("**/consults/*")

        room.wait_for_function(DEMAND_CELL, arg=["Français", "1"], timeout=15_000)
        assert room.evaluate("() => window.notReloaded") is True
        assert "specialty=dermatology" in room.url

        with room.expect_download() as download_info:
            room.click("#fig-demand a.csv")
        download = download_info.value
        text = Path(download.path()).read_text()
        assert download.suggested_filename == "situation-demand.csv"
        assert text.splitlines()[0] == \
            "specialty,language,open_consults,eligible_now,eligible_24h"
        assert "dermatology,fr,1,1,1" in text.splitlines()
        screenshot(room, "situation-room-en")

        world["coordinator"].locale = "ar"
        db.session.commit()
        room.reload()
        assert room.get_attribute("html", "dir") == "rtl"
        assert room.input_value("select[name=specialty]") == "dermatology"
        screenshot(room, "situation-room-ar")
    finally:
        coordinator_context.close()
        clinic_context.close()
