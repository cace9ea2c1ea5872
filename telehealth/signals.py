"""Named signals: how one feature reacts to another's change without importing it.

The feature that changes something sends; features above it in the layers (see
`.importlinter`) connect in their `connect_signals()`, called once from `create_app`.
Senders never know who listens, so a lower feature never imports a higher one. Signals
whose docstring says "return" are asked for values (`values_from()`), like Indico's.
"""

from __future__ import annotations

from typing import Any

from blinker import Namespace

_signals = Namespace()

consult_submitted = _signals.signal("consult-submitted", doc="""
A clinic sent a consult to the specialists; sender: the consult. Matching offers it.
""")

consult_cancelled = _signals.signal("consult-cancelled", doc="""
A consult was cancelled; sender: the consult. Matching withdraws its pending offers.
""")

specialist_changed = _signals.signal("specialist-changed", doc="""
A roster change may make a specialist eligible for consults (approved, profile, hours,
leave, credential); sender: the user id, `reason`: why. Matching re-offers what waits.
""")

consult_status_changed = _signals.signal("consult-status-changed", doc="""
A consult moved from one status to another (flushed, not yet committed); sender: the
consult, `old` and `new`: the statuses. The situation room refreshes its figures.
""")

consult_visibility = _signals.signal("consult-visibility", doc="""
Return an SQL condition on Consult under which `user` may also read a consult (besides
what consults itself grants); sender: the user. Matching adds "offered to you".
""")

consult_page = _signals.signal("consult-page", doc="""
Return a dict of template values the consult page needs from another feature; sender:
the consult, `user`: the reader. Notes adds the thread, matching whether an offer waits.
""")

consult_actions = _signals.signal("consult-actions", doc="""
Return {action name: callable(consult, user)} for the actions another feature adds to a
consult's page and API; sender: None. Matching adds accept and decline.
""")


machine_translation_requested = _signals.signal("machine-translation-requested", doc="""
Someone asked for a machine translation of a note; sender: the note id, `user_id`,
`language`. The job engine runs it off the request.
""")


consult_hidden = _signals.signal("consult-hidden", doc="""
Return a ServiceError that explains why `user` no longer sees a consult, or None; sender:
the consult id, `action`: what they tried. Matching tells a race loser it was taken.
""")

consult_coded = _signals.signal("consult-coded", doc="""
A consult's ICD-10 codes changed (one added or removed, not yet committed); sender: the
consult, `code`: the code. Surveillance asks for detection on the syndromes it counts in.
""")

outbreak_detection_wanted = _signals.signal("outbreak-detection-wanted", doc="""
Counts changed and are committed: the series of `syndrome_id` in `area_id` (and the areas
above it) should be judged again soon; sender: None. The job engine runs surveillance_detect.
""")

deadlines_due = _signals.signal("deadlines-due", doc="""
Return how many overdue items a feature escalated; sender: None. The offer sweeper sends it
on every run (committing after each receiver), so other features' deadline clocks (an
alert's verification) run on the same SLA machinery as offers, in every process that sweeps.
""")

conference_deck_uploaded = _signals.signal("conference-deck-uploaded", doc="""
A PDF deck for a conference session is stored and committed; sender: None, `deck_id`. The
job engine turns its pages into slides (render_conference_deck).
""")


def values_from(signal: Any, sender: Any = None, **kwargs: Any) -> list[Any]:
    """The non-None values every receiver of `signal` returned, in connection order."""
    return [value for _receiver, value in signal.send(sender, **kwargs) if value is not None]
