"""The inbox's sections, each its own SQL query, hold exactly the cases the role ladder puts there.

Every combination of owner, consultant, pool, participation (current or removed) and status is
sorted two ways: by the sections' SQL conditions (permissions.role_filter) and by role_of's ladder
over the whole visible list, as the inbox did before it paged; the two must agree for each user.
"""

import itertools

from app.accounts.models import User
from app.cases import service
from app.cases.models import STATUSES, Case, Participant
from app.cases.permissions import CONSULTANT, OWNER, PARTICIPANT, reach_of, roles_of
from app.cases.schemas import CaseListQuery
from app.core.time import utcnow
from app.extensions import db


def by_the_ladder(user: User, status: str | None) -> dict[str, list[int]]:
    reach = reach_of(user)
    listed = service.search_cases(viewer=user, query=CaseListQuery(status=status), reach=reach)[0]
    roles = roles_of(user, listed, reach)
    sections = {name: [] for name in service.INBOX_SECTIONS}
    for case in listed:
        role = roles[case.id]
        if role == OWNER:
            sections["questions" if case.status == "info_requested" else "my_cases"].append(case.id)
        elif role == CONSULTANT:
            sections["awaiting_decision" if case.status == "submitted" else "consulting"].append(case.id)
        elif role == PARTICIPANT:
            sections["invited"].append(case.id)
    return sections


def test_sections_agree_with_the_role_ladder_for_every_combination(app, world):
    people = ("gp", "coord", "gyn")
    with app.app_context():
        for owner, consultant, pooled, status in itertools.product(
                people, (None, *people), (False, True), STATUSES):
            case = Case(owner_id=world[owner], consultant_id=world[consultant] if consultant else None,
                        pool_id=world["pool"] if pooled else None, status=status, title="组合", clinical_question="?")
            db.session.add(case)
            db.session.flush()
            for who, removed in (("coord", False), ("gyn2", True)):
                db.session.add(Participant(case_id=case.id, user_id=world[who], discipline="radiology",
                                           invited_by_id=world["gyn"], removed_at=utcnow() if removed else None))
        db.session.commit()

        filled = set()
        for who in ("gp", "coord", "gyn", "gyn2", "outsider"):
            user = db.session.get(User, world[who])
            for status in (None, "submitted", "info_requested", "draft"):
                paged = service.dashboard(viewer=user, status=status, per_page=500)
                assert {name: [c.id for c in s.cases] for name, s in paged.items()} == by_the_ladder(user, status)
                assert all(s.total == len(s.cases) and not s.has_more for s in paged.values())
                filled |= {name for name, s in paged.items() if s.cases}
        assert filled == set(service.INBOX_SECTIONS)  # no section agreed by being empty for everyone


def test_a_section_past_the_count_cap_still_offers_its_next_page():
    def section(n, total, page):
        return service.InboxSection(cases=list(range(n)), total=total, page=page, per_page=20)

    capped = service.COUNT_CAP + 1
    assert section(20, capped, 51).has_more  # cases 1001-1020 of "1000+"
    assert not section(7, capped, 52).has_more  # a short page is the end
    assert section(20, 45, 2).has_more
    assert not section(20, 40, 2).has_more  # a full last page
    assert (section(5, 45, 3).first, section(5, 45, 3).last) == (41, 45)
