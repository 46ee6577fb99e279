"""Check that the id-only permission check (``require_ids``, used by the DICOMweb roots) decides
exactly as the one every case route uses (``require``), for given people and every action."""

from app.accounts.models import User
from app.cases.permissions import Action, require, require_ids
from app.core.errors import DomainError
from app.extensions import db


def _outcome(check) -> tuple:
    try:
        check()
    except DomainError as exc:
        return exc.status, exc.error, exc.detail
    return ("allowed",)


def assert_require_ids_agrees(app, case_id: int, user_ids: dict[str, int]) -> None:
    """Assert require_ids and require give the same answer (allowed, or the same error) everywhere."""
    with app.app_context():
        for who, user_id in user_ids.items():
            for action in Action:
                expected = _outcome(lambda: require(db.session.get(User, user_id), case_id, action))  # noqa: B023
                assert _outcome(lambda: require_ids(user_id, case_id, action)) == expected, (who, action)  # noqa: B023
                db.session.rollback()
