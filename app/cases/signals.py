"""What cases announce to other domains; sent after commit through app.core.signals."""

from blinker import Namespace

_signals = Namespace()

# kwargs case_id, user_id; the app is the sender. The realtime room pulls the user out.
participant_removed = _signals.signal("participant-removed")
