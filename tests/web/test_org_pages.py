"""Organization pages: the consortium admin page, the triage queue, the group inbox, the share dialog,
the routing trail and the away switch; what each shows follows the org and case permissions."""

import re

from tests.web.conftest import page_csrf


def _html(client, path: str) -> str:
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code)
    return r.get_data(as_text=True)


def test_outsiders_get_404_and_members_without_the_role_get_403(client, login, world, pooled_case):
    pool, consortium = world["pool"], world["consortium"]
    login(world["outsider"])  # a doctor of a hospital outside the consortium
    for path in (f"/orgs/{consortium}", f"/orgs/{pool}", f"/orgs/{pool}/queue", f"/orgs/{pool}/cases",
                 f"/cases/{pooled_case}", "/orgs/999999"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert "页面不存在" in r.get_data(as_text=True)
    assert "湘江妇儿医联体" not in _html(client, "/orgs")

    client.post("/logout", data={"csrf_token": page_csrf(client, "/")})
    login(world["gyn"])  # a member of the pool: sees it, but triage and the workload view are not theirs
    assert client.get(f"/orgs/{pool}").status_code == 200
    assert client.get(f"/orgs/{pool}/queue").status_code == 403
    assert client.get(f"/orgs/{pool}/cases").status_code == 403
    assert client.get(f"/cases/{pooled_case}").status_code == 404  # not assigned to them


def test_consortium_admin_page_shows_form_institutions_pools_rules_and_the_forms(client, login, world, api_as):
    c = world["consortium"]
    login(world["cadmin"])
    html = _html(client, f"/orgs/{c}")
    assert 'data-form="1-1"' in html
    assert "一对一" in html
    assert re.search(rf'data-institution-id="{world["county"]}" data-side="requester"', html)
    assert f'<div class="pool" data-org-id="{world["pool"]}"' in html
    assert f'data-rule-id="{world["rule"]}"' in html
    assert "规则 2" in html
    for form in ('id="add-institution"', 'id="add-pool"', 'id="add-rule"', 'id="settings-form"', 'id="add-member"'):
        assert form in html, form
    assert f'data-api="/api/orgs/{world["pool"]}/members/{world["gyn"]}" data-method="DELETE"' in html

    # A second requesting hospital makes it one-to-many.
    api_as(world["cadmin"]).post(f"/api/orgs/{c}/institutions", json={"institution_id": world["community"],
                                                                      "side": "requester"})
    html = _html(client, f"/orgs/{c}")
    assert 'data-form="1-n"' in html
    assert "一对多" in html

    client.post("/logout", data={"csrf_token": page_csrf(client, "/")})
    login(world["gp"])  # a doctor of a requesting hospital: sees the consortium, manages nothing
    html = _html(client, f"/orgs/{c}")
    assert "湘江妇儿医联体" in html
    assert "add-rule" not in html
    assert "add-institution" not in html
    assert 'data-method="DELETE"' not in html


def test_queue_page_lists_the_case_with_question_suggestions_and_one_tap_assign(client, login, world, pooled_case):
    pool = world["pool"]
    login(world["coord"])
    inbox = _html(client, "/")
    assert f'href="/orgs/{pool}/queue"' in inbox  # the inbox leads the coordinator to the queue
    html = _html(client, f"/orgs/{pool}/queue")
    assert re.search(rf'<li class="card queue-item[^"]*" data-case-id="{pooled_case}"', html)
    assert "加急" in html  # the urgency
    for who in ("gyn", "gyn2"):
        assert f'<li class="suggestion" data-user-id="{world[who]}">' in html
    assert f'data-api="/api/cases/{pooled_case}/assign"' in html
    assert "可接诊 (available)" in html  # the reasons are shown

    # Once assigned it leaves the queue; the group inbox shows who holds it.
    token = page_csrf(client, "/")
    r = client.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn"]},
                    headers={"X-CSRFToken": token})
    assert r.status_code == 200, r.json
    assert f'data-case-id="{pooled_case}"' not in _html(client, f"/orgs/{pool}/queue")
    group = _html(client, f"/orgs/{pool}/cases")
    row = re.search(rf'data-case-id="{pooled_case}">(.*?)</li>', group, re.S).group(1)
    assert "负责" in row
    assert re.search(r"holder\">.*?：(.+?)</span>", row)


def test_case_page_offers_pool_sharing_and_shows_the_routing_trail(client, login, world, make_case, api_as):
    case_id = make_case(world["gp"], specialty="gynecology")
    login(world["gp"])
    html = _html(client, f"/cases/{case_id}")
    assert 'id="share-to-org"' in html
    assert 'id="org-picker" data-source="/api/orgs"' in html
    assert 'id="routing"' not in html  # no trail before any routing

    api_as(world["gp"]).post(f"/api/cases/{case_id}/share", json={"org_id": world["consortium"]})
    api_as(world["coord"]).post(f"/api/cases/{case_id}/assign", json={"specialist_id": world["gyn"]})
    api_as(world["gyn"]).post(f"/api/cases/{case_id}/decline", json={"reason": "出差"})
    html = _html(client, f"/cases/{case_id}")
    trail = re.search(r'id="routing">(.*?)</section>', html, re.S).group(1)
    assert re.findall(r'data-kind="(\w+)"', trail) == ["routed", "assigned", "returned"]
    assert "妇科 → 妇科会诊组 by rule 2" in trail
    assert "退回队列" in trail


def test_coordinator_case_page_offers_the_queue_not_the_clinical_actions(client, login, world, pooled_case):
    login(world["coord"])
    html = _html(client, f"/cases/{pooled_case}")
    assert '<section class="card action" id="assign">' in html
    assert f'href="/orgs/{world["pool"]}/queue#case-{pooled_case}"' in html
    for card in ("decide", "share", "opinion-editor", "invite"):
        assert f'id="{card}"' not in html


def test_away_switch_on_the_inbox(client, login, world, api_as):
    token = login(world["gyn"])
    html = _html(client, "/")
    assert 'id="away-form"' in html
    assert 'data-type="end-of-day"' in html
    r = client.put("/api/me/away", json={"until": "2099-05-06T15:59:59Z"}, headers={"X-CSRFToken": token})
    assert r.status_code == 200
    html = _html(client, "/")
    assert 'id="away-status"' in html
    assert "2099-05-06" in html
    assert 'id="away-back"' in html
    client.put("/api/me/away", json={}, headers={"X-CSRFToken": token})
    assert 'id="away-status"' not in _html(client, "/")


def test_group_inbox_page_hides_the_titles_of_cases_the_viewer_may_not_open(client, login, world, pooled_case,
                                                                             make_case, api_as):
    # As GET /api/orgs/{id}/cases: who holds what, but a title only of a case the viewer may open.
    held = make_case(world["gp"], specialty="gynecology", title="私下转给成员的病例")
    api_as(world["gp"]).post(f"/api/cases/{held}/share", json={"specialist_id": world["gyn2"]})
    gyn2_name = api_as(world["gyn2"]).get("/api/me").json["name"]
    for viewer in ("coord", "cadmin", "admin"):
        assert api_as(world[viewer]).get(f"/api/cases/{held}").status_code == 404
        login(world[viewer])
        page = _html(client, f"/orgs/{world['pool']}/cases")
        row = re.search(rf'data-case-id="{held}">(.*?)</li>', page, re.S).group(1)
        assert gyn2_name in row, viewer  # who holds it is the view's point
        assert "私下转给成员的病例" not in page, viewer
        assert f'href="/cases/{held}"' not in page, viewer
        pooled = re.search(rf'data-case-id="{pooled_case}">(.*?)</li>', page, re.S).group(1)
        assert ("盆腔包块待查" in pooled) == (viewer == "coord"), viewer  # the pool's case: its coordinator's
        client.post("/logout", data={"csrf_token": page_csrf(client, "/")})
