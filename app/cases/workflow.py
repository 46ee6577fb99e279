"""The case state machine: every allowed status change, in one table.

A transition not in the table answers 409 ``{"error": "invalid transition", "detail": {"status",
"allowed"}}`` and changes nothing. Transitions are applied with a conditional UPDATE (``WHERE
status IN (...)``), so two concurrent requests cannot both win.
"""

from dataclasses import dataclass

import sqlalchemy as sa

from app.accounts.models import User
from app.cases.models import Case, CaseEvent
from app.cases.permissions import Action
from app.cases.signals import case_moved
from app.core.errors import Conflict
from app.core.signals import send_after_commit
from app.core.time import utcnow
from app.extensions import db


@dataclass(frozen=True)
class Transition:
    action: Action
    sources: frozenset[str]
    target: str


TRANSITIONS: dict[Action, Transition] = {t.action: t for t in (
    Transition(Action.SHARE, frozenset({"draft", "declined"}), "submitted"),
    Transition(Action.ACCEPT, frozenset({"submitted"}), "accepted"),
    Transition(Action.DECLINE, frozenset({"submitted"}), "declined"),
    Transition(Action.ASK, frozenset({"accepted"}), "info_requested"),
    Transition(Action.ANSWER, frozenset({"info_requested"}), "accepted"),
    Transition(Action.SIGN_OPINION, frozenset({"accepted"}), "answered"),
    Transition(Action.CLOSE, frozenset({"answered"}), "closed"),
    Transition(Action.WITHDRAW, frozenset({"draft", "submitted"}), "withdrawn"),
    # The pool path: a coordinator designates the specialist or sends the case to another pool,
    # and a decline by the designated specialist returns it to the pool's queue; all stay submitted.
    Transition(Action.ASSIGN, frozenset({"submitted"}), "submitted"),
    Transition(Action.REROUTE, frozenset({"submitted"}), "submitted"),
    Transition(Action.RETURN_TO_POOL, frozenset({"submitted"}), "submitted"),
)}

# Statuses in which the case is being worked on (counts as the consultant's open workload).
OPEN_STATUSES = ("submitted", "accepted", "info_requested")
# Statuses in which the team can work: invite, write reports and opinion drafts, upload more.
WORKING_STATUSES = frozenset({"accepted", "info_requested"})
# Files can be added while the case is being prepared or worked on, not after it is answered.
UPLOAD_STATUSES = frozenset({"draft", "submitted", "declined", "accepted", "info_requested"})
# A signed opinion can be amended (a new signed version) once the case is answered.
AMENDABLE_STATUSES = frozenset({"answered", "closed"})

# The statuses in which each action can be taken: one table for the services that enforce it and
# for permissions.available_actions, which tells the pages what to offer. Actions not listed
# (view, download, chat, remove, read_audit) do not depend on the status.
STATUS_GATES: dict[Action, frozenset[str]] = {
    **{action: t.sources for action, t in TRANSITIONS.items()},
    Action.UPLOAD: UPLOAD_STATUSES,
    Action.INVITE: WORKING_STATUSES,
    Action.REPORT: WORKING_STATUSES,
    Action.WRITE_OPINION: WORKING_STATUSES,
    Action.AMEND_OPINION: AMENDABLE_STATUSES,
    Action.PROPOSE_TEACHING: frozenset({"closed"}),
}


def allowed_from(status: str) -> list[str]:
    """Return the transitions possible from a status."""
    return sorted(t.action.value for t in TRANSITIONS.values() if status in t.sources)


def invalid(case: Case, attempted: str):
    """The 409 answer for an action the case's status does not allow."""
    return Conflict("invalid transition", {"status": case.status, "attempted": attempted,
                                           "allowed": allowed_from(case.status)})


def status_allows(case: Case, action: Action) -> bool:
    """Whether the case's status allows the action now (actions without a gate always are).

    The one reading of ``STATUS_GATES``: the upload route, STOW-RS and the DICOM listener ask it
    whether the case takes images now; ``permissions.available_actions`` asks it what to offer.
    """
    return action not in STATUS_GATES or case.status in STATUS_GATES[action]


def require_status(case: Case, *actions: Action) -> None:
    """Raise the 409 answer unless the case's status allows one of the actions (the first is named)."""
    if not any(status_allows(case, a) for a in actions):
        raise invalid(case, actions[0].value)


def apply(case: Case, action: Action, *, actor: User, note: str | None = None, data: dict | None = None,
          values: dict | None = None, where: tuple = ()) -> CaseEvent:
    """Move the case along the transition for action (with extra column values); record it.

    ``where`` adds conditions the UPDATE must also meet (e.g. still unassigned); when they no
    longer hold the answer is 409 "the case changed meanwhile".
    """
    transition = TRANSITIONS[action]
    if case.status not in transition.sources:
        raise invalid(case, action.value)
    previous = case.status
    changes = {"status": transition.target, "updated_at": utcnow(), **(values or {})}
    result = db.session.execute(
        sa.update(Case).where(Case.id == case.id, Case.status.in_(transition.sources), *where).values(**changes)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        db.session.rollback()
        db.session.refresh(case)
        if where and case.status in transition.sources:
            raise Conflict("the case changed meanwhile", {"status": case.status, "attempted": action.value})
        raise invalid(case, action.value)  # someone else moved it first
    db.session.refresh(case)
    event = CaseEvent(case_id=case.id, actor_id=actor.id, action=action.value, from_status=previous,
                      to_status=transition.target, note=note, data=data)
    db.session.add(event)
    send_after_commit(case_moved, case_id=case.id)
    return event


def record(case: Case, action: str, *, actor: User, note: str | None = None, data: dict | None = None) -> CaseEvent:
    """Add a timeline entry that is not a status change (invitations, reports, amendments)."""
    event = CaseEvent(case_id=case.id, actor_id=actor.id, action=action, note=note, data=data)
    db.session.add(event)
    return event
