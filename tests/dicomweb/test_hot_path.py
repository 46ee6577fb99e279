"""The DICOMweb roots' fast path loosens nothing.

A bearer request is checked from the token's ids in one query (the token lookup cached a few
seconds), and study/series searches are answered from records each process keeps while the
case's index is unchanged. So: a deactivated account and a revoked token are refused at once,
and an instance stored after a search shows in the next one.
"""

from tests.dicomweb.conftest import fresh, stow_body

JSON = {"Accept": "application/dicom+json"}


def test_a_deactivated_account_is_refused_at_once_though_its_token_is_cached(client, token_for, world, make_user,
                                                                             api_as):
    owner = world["ids"]["owner"]
    headers = {"Authorization": f"Bearer {token_for(owner)}", **JSON}
    root = f"/dicomweb/cases/{world['case_id']}"
    assert client.get(f"{root}/studies", headers=headers).status_code == 200  # the token is now cached
    admin = api_as(make_user(role="admin"))
    assert admin.patch(f"/api/admin/users/{owner}", json={"active": False}).status_code == 200
    for url in (f"{root}/studies", f"{root}/series"):
        r = client.get(url, headers=headers)
        assert r.status_code == 401, url
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="huizhen"'
    assert admin.patch(f"/api/admin/users/{owner}", json={"active": True}).status_code == 200
    assert client.get(f"{root}/studies", headers=headers).status_code == 401  # its tokens were revoked
    fresh = {"Authorization": f"Bearer {token_for(owner)}", **JSON}
    assert client.get(f"{root}/studies", headers=fresh).status_code == 200


def test_a_revoked_token_is_refused_at_once(client, token_for, world):
    headers = {"Authorization": f"Bearer {token_for(world['ids']['consultant'])}", **JSON}
    root = f"/dicomweb/cases/{world['case_id']}"
    assert client.get(f"{root}/studies", headers=headers).status_code == 200
    assert client.delete("/api/auth/token", headers=headers).status_code == 204
    assert client.get(f"{root}/studies", headers=headers).status_code == 401


def test_an_instance_stored_after_a_search_shows_in_the_next(client, token_for, world, stored):
    headers = {"Authorization": f"Bearer {token_for(world['ids']['owner'])}", **JSON}
    root = f"/dicomweb/cases/{world['case_id']}"
    study = stored["CT_small.dcm"][0]

    def counts():
        studies = {s["0020000D"]["Value"][0]: s["00201208"]["Value"][0]
                   for s in client.get(f"{root}/studies", headers=headers).json}
        series = {s["0020000E"]["Value"][0]: s["00201209"]["Value"][0]
                  for s in client.get(f"{root}/studies/{study}/series", headers=headers).json}
        return studies, series

    before = counts()
    assert counts() == before  # answered again from the kept records
    # Another instance of the same series, stored through STOW-RS (the upload path, as C-STORE's).
    ds = fresh()
    r = client.post(f"{root}/studies", data=stow_body([ds]), headers={**headers, "Content-Type":
                    "multipart/related; type=application/dicom; boundary=b0undary"})
    assert r.status_code == 200, r.json
    after = counts()
    assert after[0][study] == before[0][study] + 1
    series = stored["CT_small.dcm"][1]
    assert after[1][series] == before[1][series] + 1
    assert {k: v for k, v in after[1].items() if k != series} == {k: v for k, v in before[1].items() if k != series}
