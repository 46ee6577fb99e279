"""Bring a case to any status through the real API, with an owner, a consultant and a participant."""

# The API calls that lead from a fresh draft to each status (the participant joins once accepted).
PATHS = {
    "draft": [],
    "submitted": ["share"],
    "declined": ["share", "decline"],
    "withdrawn": ["withdraw"],
    "accepted": ["share", "accept", "invite"],
    "info_requested": ["share", "accept", "invite", "ask"],
    "answered": ["share", "accept", "invite", "sign"],
    "closed": ["share", "accept", "invite", "sign", "close"],
}


def case_in_status(api_as, make_user, make_case, status: str) -> tuple[int, dict[str, int]]:
    """Return (case id, user ids by role) for a new case brought to the status."""
    ids = {"owner": make_user(), "consultant": make_user(specialty="gynecology"),
           "participant": make_user(specialty="radiology")}
    case_id = make_case(ids["owner"], specialty="gynecology")
    owner, consultant = api_as(ids["owner"]), api_as(ids["consultant"])
    url = f"/api/cases/{case_id}"
    steps = {
        "share": lambda: owner.post(f"{url}/share", json={"specialist_id": ids["consultant"]}),
        "decline": lambda: consultant.post(f"{url}/decline", json={"reason": "不在我的专业范围"}),
        "withdraw": lambda: owner.post(f"{url}/withdraw"),
        "accept": lambda: consultant.post(f"{url}/accept"),
        "invite": lambda: consultant.post(f"{url}/participants",
                                          json={"user_id": ids["participant"], "discipline": "radiology"}),
        "ask": lambda: consultant.post(f"{url}/questions", json={"question": "有无腹水？"}),
        "sign": lambda: consultant.post(f"{url}/opinion", json={"diagnosis": "卵巢囊肿", "recommendations": "随访"}),
        "close": lambda: owner.post(f"{url}/close", json={"rating": 5}),
    }
    for step in PATHS[status]:
        r = steps[step]()
        assert r.status_code in (200, 201), (step, r.status_code, r.get_json(silent=True))
    assert owner.get(url).json["status"] == status
    return case_id, ids
