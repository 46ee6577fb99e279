"""Text from outside: a NUL character is a 400 (PostgreSQL text cannot hold it), never a 500."""


def test_a_nul_character_in_a_body_is_400_and_nothing_is_stored(api):
    r = api.post("/api/cases", json={"title": "a\x00b", "clinical_question": "q"})
    assert r.status_code == 400, (r.status_code, r.data[:200])
    assert r.json["detail"][0]["field"] == "title"
    assert api.get("/api/cases").json["items"] == []
    r = api.put("/api/me/away", json={"until": None, "note": "x\x00"})
    assert r.status_code == 400, (r.status_code, r.data[:200])


def test_a_nul_character_in_a_query_is_400(api):
    assert api.get("/api/cases?q=%00").status_code == 400


def test_a_nul_character_in_a_path_segment_is_400(api, case_id):
    """Path segments are looked up as text (UIDs): on PostgreSQL a NUL in one was a 500."""
    for path in (f"/api/cases/{case_id}/instances/%00/file", f"/api/cases/{case_id}/instances/a%00b/rendered",
                 f"/api/cases/{case_id}/series/%00/thumbnail", "/login%00"):
        r = api.get(path)
        assert r.status_code == 400, (path, r.status_code, r.data[:200])
        assert "NUL" in r.get_data(as_text=True)
    assert api.get(f"/api/cases/{case_id}/instances/1.2.3/file").status_code == 404  # the same routes still answer


def test_dates_at_the_ends_of_the_calendar_are_400(api, case_id, api_as, make_user):
    """A period is computed a year or a day around from/to: 9999-12-31 overflowed (a 500)."""
    me = api.get("/api/me").json["id"]
    for url in ("/api/cases?to=9999-12-31", "/api/cases?from=0001-01-01",
                f"/api/users/{me}/evaluation?to=9999-12-31", f"/api/users/{me}/evaluation?to=0001-01-05"):
        r = api.get(url)
        assert r.status_code == 400, (url, r.status_code, r.data[:200])
    assert api.get("/api/cases?from=2020-01-01&to=2026-12-31").status_code == 200
