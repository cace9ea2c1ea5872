"""XSS payloads in everything people write, rendered in headless Chromium: no script runs."""

from __future__ import annotations

import pytest

from telehealth.consults.models import Consult
from telehealth.extensions import db
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser

PAYLOADS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    '"><svg/onload=window.__xss=3>',
    "'><iframe srcdoc=\"<script>parent.__xss=4</script>\"></iframe>",
    "</textarea><script>window.__xss=5</script>",
    "<a href=\"javascript:window.__xss=6\" id=xss-link>x</a>",
    "{{ 7*7 }}",
]
ALL = " ".join(PAYLOADS)


def _plant_payloads(objects) -> None:
    consult: Consult = objects["consult"]
    consult.presenting_problem = ALL
    consult.history = ALL
    consult.question = ALL
    consult.patient_ref = PAYLOADS[1][:40]
    objects["note"].current.body = ALL
    objects["attachment"].original_name = PAYLOADS[1] + ".jpg"
    objects["clinician"].name = PAYLOADS[2][:120]
    objects["clinic"].name = PAYLOADS[0]
    objects["specialist"].name = PAYLOADS[5][:120]
    db.session.commit()


def test_no_payload_runs_in_a_real_browser(live_server, browser, build_case):
    objects = build_case("accepted")
    _plant_payloads(objects)
    page = browser.new_page()
    dialogs, csp_violations = [], []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.on("console", lambda msg: csp_violations.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    page.goto(f"{live_server}/login")
    page.fill("#email", objects["clinician"].email)
    page.fill("#password", PASSWORD)
    page.click("#submit")
    page.wait_for_url(f"{live_server}/")
    for path in ("/", f"/consults/{objects['consult'].id}", "/api/consults"):
        page.goto(f"{live_server}{path}")
        page.wait_for_load_state("load")
        if path.startswith("/consults"):
            page.click("details.amend summary")  # the amend form holds the text in a textarea
        state = page.evaluate("""() => ({
            xss: window.__xss === undefined ? null : window.__xss,
            // Only our own static files may be scripts: nothing inline, nothing injected.
            scripts: [...document.querySelectorAll('script')].filter(
                s => !s.src.startsWith(location.origin + '/static/')).length,
            injected: document.querySelectorAll(
                'img[src="x"], svg, iframe, #xss-link, [onerror], [onload]').length,
            text: document.body.innerText,
            background: getComputedStyle(document.body).backgroundColor,
        })""")
        assert state["xss"] is None, path
        assert state["scripts"] == 0 and state["injected"] == 0, path
        if path.startswith("/consults"):
            assert PAYLOADS[0] in state["text"] and "{{ 7*7 }}" in state["text"]
            # Our own stylesheet is allowed by the policy: the page is styled.
            assert state["background"] == "rgb(244, 246, 248)"
    assert not dialogs
    assert not csp_violations  # nothing even tried to run and got blocked by the policy
    page.close()
