"""What cases announce to other domains; sent after commit through app.core.signals."""

from blinker import Namespace

_signals = Namespace()

# kwargs case_id, user_id; the app is the sender. The realtime room pulls the user out.
participant_removed = _signals.signal("participant-removed")
# kwargs case_id; sent by every workflow transition (declined, returned to its pool, rerouted,
# closed...): who may be in the case's room may have changed, and the room checks its members again.
case_moved = _signals.signal("case-moved")
