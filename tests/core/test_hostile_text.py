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
