"""Sharing to a consortium or pool, the triage queue, assign, decline back to the queue, reroute,
removal ending access, the group workload view, and the due clock pausing while info is asked."""

from datetime import timedelta

import sqlalchemy as sa

from app.cases.models import Case
from app.core.time import utcnow
from app.extensions import db
from app.notifications.models import Notification


def kinds_of(app, user_id):
    with app.app_context():
        return [n.kind for n in db.session.scalars(sa.select(Notification).where(Notification.user_id == user_id))]


def test_share_to_consortium_goes_to_the_pool_by_the_rule(app, world, pooled_case, api_as):
    gp = api_as(world["gp"])
    case = gp.get(f"/api/cases/{pooled_case}").json
    assert case["status"] == "submitted"
    assert case["pool"] == {"id": world["pool"], "name": "妇科会诊组"}
    assert case["consultant"] is None
    share = gp.get(f"/api/cases/{pooled_case}/timeline").json["items"][-1]
    assert share["action"] == "share"
    assert share["note"] == "请分诊"
    assert share["data"]["reason"] == "妇科 → 妇科会诊组 by rule 2"
    trail = gp.get(f"/api/cases/{pooled_case}/routing").json
    assert trail["pool"]["id"] == world["pool"]
    assert [(d["kind"], d["reason"], d["rule_id"]) for d in trail["items"]] == [
        ("routed", "妇科 → 妇科会诊组 by rule 2", world["rule"])]
    assert "pool_queued" in kinds_of(app, world["coord"])  # the coordinator learns of it
    assert kinds_of(app, world["gyn"]) == []  # nobody is designated yet


def test_no_matching_rule_is_a_clear_error_naming_the_specialty(world, make_case, api_as):
    case_id = make_case(world["gp"], specialty="cardiology")
    r = api_as(world["gp"]).post(f"/api/cases/{case_id}/share", json={"org_id": world["consortium"]})
    assert r.status_code == 422
    assert "cardiology" in r.json["error"]
    assert r.json["detail"]["specialty"] == "cardiology"
    assert api_as(world["gp"]).get(f"/api/cases/{case_id}").json["status"] == "draft"


def test_priority_fallback_and_away_specialists_are_skipped(world, make_case, make_user, api_as):
    c, cadmin = world["consortium"], api_as(world["cadmin"])
    star = make_user(specialty="gynecology", institution_id=world["tertiary"])
    assert cadmin.post(f"/api/orgs/{c}/rules", json={"priority": 1, "specialty": "gynecology", "urgency": "urgent",
                                                     "target_user_id": star}).status_code == 201
    assert cadmin.post(f"/api/orgs/{c}/rules", json={"priority": 9, "fallback": True,
                                                     "target_org_id": world["pool"]}).status_code == 201
    gp = api_as(world["gp"])
    urgent = make_case(world["gp"], specialty="gynecology", urgency="urgent")
    r = gp.post(f"/api/cases/{urgent}/share", json={"org_id": c})
    assert r.json["consultant"]["id"] == star
    assert r.json["pool"] is None
    # Away: rule 1 is skipped and the reason says so.
    away = api_as(star).put("/api/me/away", json={"until": (utcnow() + timedelta(days=3)).isoformat()})
    assert away.status_code == 200
    second = make_case(world["gp"], specialty="gynecology", urgency="urgent")
    r = gp.post(f"/api/cases/{second}/share", json={"org_id": c})
    assert r.json["pool"]["id"] == world["pool"]
    assert r.json["consultant"] is None
    reason = gp.get(f"/api/cases/{second}/routing").json["items"][0]["reason"]
    assert reason.startswith("妇科 → 妇科会诊组 by rule 2")
    assert "rule 1 skipped" in reason
    assert "away" in reason
    # No regular rule for cardiology: the fallback rule catches it.
    other = make_case(world["gp"], specialty="cardiology")
    r = gp.post(f"/api/cases/{other}/share", json={"org_id": c})
    assert r.status_code == 200
    assert r.json["pool"]["id"] == world["pool"]
    assert gp.get(f"/api/cases/{other}/routing").json["items"][0]["reason"] == "心内科 → 妇科会诊组 by fallback rule 9"


def test_unwatched_pool_is_skipped(world, make_case, api_as):
    cadmin = api_as(world["cadmin"])
    cadmin.delete(f"/api/orgs/{world['pool']}/members/{world['coord']}")
    case_id = make_case(world["gp"], specialty="gynecology")
    r = api_as(world["gp"]).post(f"/api/cases/{case_id}/share", json={"org_id": world["consortium"]})
    assert r.status_code == 422  # a queue nobody watches is refused, not filled silently


def test_share_to_a_pool_directly_and_who_may_refer(world, make_case, api_as):
    case_id = make_case(world["gp"], specialty="oncology")
    r = api_as(world["gp"]).post(f"/api/cases/{case_id}/share", json={"org_id": world["pool"]})
    assert r.status_code == 200
    assert r.json["pool"]["id"] == world["pool"]
    assert api_as(world["gp"]).get(f"/api/cases/{case_id}/routing").json["items"][0]["rule_id"] is None
    # The outsider's hospital is not a requesting member: the org is unknown to them.
    theirs = make_case(world["outsider"], specialty="gynecology")
    for org in (world["consortium"], world["pool"], 999999):
        r = api_as(world["outsider"]).post(f"/api/cases/{theirs}/share", json={"org_id": org})
        assert r.status_code == 400
        assert r.json["error"] == "unknown org"
    both = api_as(world["gp"]).post(f"/api/cases/{theirs}/share", json={"org_id": 1, "specialist_id": 1})
    assert both.status_code == 404  # not the gp's case
    r = api_as(world["outsider"]).post(f"/api/cases/{theirs}/share", json={"org_id": 1, "specialist_id": 1})
    assert r.status_code == 400
    assert "exactly one" in str(r.json["detail"])


def test_queue_orders_by_urgency_and_suggests_available_specialists(app, world, make_case, api_as):
    gp = api_as(world["gp"])
    ids = []
    for urgency in ("routine", "emergency", "urgent"):
        case_id = make_case(world["gp"], specialty="gynecology", urgency=urgency)
        assert gp.post(f"/api/cases/{case_id}/share", json={"org_id": world["consortium"]}).status_code == 200
        ids.append(case_id)
    api_as(world["gyn2"]).put("/api/me/away", json={"until": (utcnow() + timedelta(days=1)).isoformat()})
    coord = api_as(world["coord"])
    items = coord.get(f"/api/orgs/{world['pool']}/queue").json["items"]
    assert [i["urgency"] for i in items] == ["emergency", "urgent", "routine"]
    first = items[0]
    assert first["clinical_question"]
    assert first["due_at"]
    assert first["overdue"] is False
    assert [s["specialist"]["id"] for s in first["suggestions"]] == [world["gyn"]]  # gyn2 is away
    assert any("专科匹配" in reason for reason in first["suggestions"][0]["reasons"])
    # Overdue items are flagged.
    with app.app_context():
        db.session.execute(sa.update(Case).where(Case.id == ids[0]).values(due_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
    flagged = {i["id"]: i["overdue"] for i in coord.get(f"/api/orgs/{world['pool']}/queue").json["items"]}
    assert flagged == {ids[0]: True, ids[1]: False, ids[2]: False}
    # Only coordinators read the queue; members 403, strangers 404.
    assert api_as(world["gyn"]).get(f"/api/orgs/{world['pool']}/queue").status_code == 403
    assert api_as(world["cadmin"]).get(f"/api/orgs/{world['pool']}/queue").status_code == 403
    assert api_as(world["outsider"]).get(f"/api/orgs/{world['pool']}/queue").status_code == 404


def test_overloaded_specialists_are_not_suggested(app, world, pooled_case, make_case, api_as):
    from app.orgs.routing import OVERLOADED_AT

    for _ in range(OVERLOADED_AT):
        case_id = make_case(world["gp"])
        assert api_as(world["gp"]).post(f"/api/cases/{case_id}/share",
                                        json={"specialist_id": world["gyn"]}).status_code == 200
    items = api_as(world["coord"]).get(f"/api/orgs/{world['pool']}/queue").json["items"]
    assert [s["specialist"]["id"] for s in items[0]["suggestions"]] == [world["gyn2"]]


def test_decline_returns_to_the_queue_then_reassign_and_accept(app, world, pooled_case, api_as):
    coord, gyn, gyn2, gp = (api_as(world[w]) for w in ("coord", "gyn", "gyn2", "gp"))
    queue = f"/api/orgs/{world['pool']}/queue"
    r = coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn"], "note": "王主任擅长"})
    assert r.status_code == 200, r.json
    assert r.json["status"] == "submitted"
    assert r.json["consultant"]["id"] == world["gyn"]
    assert coord.get(queue).json["items"] == []
    assert "assigned" in kinds_of(app, world["gyn"])
    assert "routed" in kinds_of(app, world["gp"])
    assigned = gp.get(f"/api/cases/{pooled_case}/timeline").json["items"][-1]
    assert assigned["action"] == "assign"
    assert assigned["actor"]["id"] == world["coord"]
    assert assigned["data"]["specialist_id"] == world["gyn"]
    shown = assigned["data"]["suggestions"]  # what the coordinator saw, with the reasons
    assert {x["user_id"] for x in shown} == {world["gyn"], world["gyn2"]}
    assert all(x["reasons"] for x in shown)
    # The designated specialist declines: back in the queue, nobody resubmits.
    r = gyn.post(f"/api/cases/{pooled_case}/decline", json={"reason": "本周手术排满"})
    assert r.status_code == 200
    assert r.json["status"] == "submitted"
    assert r.json["consultant"] is None
    assert gyn.get(f"/api/cases/{pooled_case}").status_code == 404
    assert [i["id"] for i in coord.get(queue).json["items"]] == [pooled_case]
    assert kinds_of(app, world["coord"]).count("pool_queued") == 2
    # The owner's page says the specialist declined (a removal from the pool reads otherwise).
    page = api_as(world["gp"]).get(f"/cases/{pooled_case}").get_data(as_text=True)
    assert "婉拒，病例退回分诊队列" in page
    assert "因指定专家离开会诊组" not in page
    assert coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn2"]}).status_code == 200
    r = gyn2.post(f"/api/cases/{pooled_case}/accept")
    assert r.status_code == 200
    assert r.json["status"] == "accepted"
    kinds = [d["kind"] for d in gp.get(f"/api/cases/{pooled_case}/routing").json["items"]]
    assert kinds == ["routed", "assigned", "returned", "assigned"]
    steps = [(e["action"], e["to"]) for e in gp.get(f"/api/cases/{pooled_case}/timeline").json["items"]]
    assert steps == [("created", None), ("share", "submitted"), ("assign", "submitted"),
                     ("return_to_pool", "submitted"), ("assign", "submitted"), ("accept", "accepted")]
    # The coordinator still follows the case, but has no chat and no opinion.
    assert coord.get(f"/api/cases/{pooled_case}").json["allowed_actions"] == ["assign", "download", "reroute", "view",
                                                                             "view_images"]  # no read_opinion
    assert coord.get(f"/api/cases/{pooled_case}/messages").status_code == 403
    assert coord.post(f"/api/cases/{pooled_case}/opinion", json={"diagnosis": "x"}).status_code == 403
    # Once the opinion is signed and a report written, the coordinator reads neither.
    assert gyn2.post(f"/api/cases/{pooled_case}/reports", json={"body": "影像：盆腔包块 5cm",
                                                                 "discipline": "radiology"}).status_code == 201
    assert gyn2.post(f"/api/cases/{pooled_case}/opinion", json={"diagnosis": "子宫肌瘤",
                                                                 "recommendations": "随访"}).status_code == 200
    assert gp.get(f"/api/cases/{pooled_case}").json["opinion"]["diagnosis"] == "子宫肌瘤"
    seen = coord.get(f"/api/cases/{pooled_case}").json
    assert (seen["opinion"], seen["reports"]) == (None, [])
    assert "子宫肌瘤" not in str(seen)
    for path in ("opinion", "opinion.pdf", "reports"):
        assert coord.get(f"/api/cases/{pooled_case}/{path}").status_code == 403, path


def test_assign_checks(world, pooled_case, api_as, make_user):
    coord = api_as(world["coord"])
    stranger = make_user(specialty="gynecology")
    assert coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": stranger}).status_code == 400
    api_as(world["gyn2"]).put("/api/me/away", json={"until": (utcnow() + timedelta(days=1)).isoformat()})
    r = coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn2"]})
    assert r.status_code == 409
    assert "away" in r.json["error"]
    assert coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn"]}).status_code == 200
    r = coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn"]})
    assert r.status_code == 409
    assert r.json["error"] == "already assigned"
    # Owner and specialist may not assign.
    assert api_as(world["gp"]).post(f"/api/cases/{pooled_case}/assign",
                                    json={"specialist_id": world["gyn"]}).status_code == 403


def test_reroute_moves_the_case_to_another_pool(app, world, pooled_case, api_as, make_user):
    cadmin, coord = api_as(world["cadmin"]), api_as(world["coord"])
    other = cadmin.post("/api/orgs", json={"kind": "doctor_group", "name": "肿瘤会诊组",
                                           "parent_id": world["consortium"]}).json["id"]
    coord2 = make_user(institution_id=world["tertiary"])
    cadmin.post(f"/api/orgs/{other}/members", json={"user_id": coord2, "role": "coordinator"})
    coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn"]})
    assert coord.post(f"/api/cases/{pooled_case}/reroute", json={"org_id": world["pool"]}).status_code == 409
    lone = api_as(world["admin"]).post("/api/orgs", json={"kind": "doctor_group", "name": "外部组"}).json["id"]
    assert coord.post(f"/api/cases/{pooled_case}/reroute", json={"org_id": lone}).status_code == 400
    r = coord.post(f"/api/cases/{pooled_case}/reroute", json={"org_id": other, "note": "考虑恶性"})
    assert r.status_code == 200, r.json
    assert r.json["pool"]["name"] == "肿瘤会诊组"
    assert r.json["consultant"] is None
    assert r.json["status"] == "submitted"
    assert coord.get(f"/api/cases/{pooled_case}").status_code == 404  # no longer their pool
    assert api_as(world["gyn"]).get(f"/api/cases/{pooled_case}").status_code == 404
    assert [i["id"] for i in api_as(coord2).get(f"/api/orgs/{other}/queue").json["items"]] == [pooled_case]
    assert "removed" in kinds_of(app, world["gyn"])
    assert "pool_queued" in kinds_of(app, coord2)
    last = api_as(world["gp"]).get(f"/api/cases/{pooled_case}/routing").json["items"][-1]
    assert last["kind"] == "rerouted"
    assert last["reason"] == "妇科会诊组 → 肿瘤会诊组 (shared to the pool)"


def test_removing_a_coordinator_ends_access_at_once(world, pooled_case, api_as):
    coord = api_as(world["coord"])
    assert coord.get(f"/api/cases/{pooled_case}").status_code == 200
    assert [c["id"] for c in coord.get("/api/cases").json["items"]] == [pooled_case]
    assert api_as(world["cadmin"]).delete(f"/api/orgs/{world['pool']}/members/{world['coord']}").status_code == 204
    assert coord.get(f"/api/cases/{pooled_case}").status_code == 404
    assert coord.get("/api/cases").json["items"] == []
    assert coord.get(f"/api/orgs/{world['pool']}/queue").status_code == 404


def test_group_workload_view(world, pooled_case, make_case, api_as):
    coord = api_as(world["coord"])
    held = make_case(world["gp"], specialty="gynecology")
    api_as(world["gp"]).post(f"/api/cases/{held}/share", json={"specialist_id": world["gyn2"]})
    view = coord.get(f"/api/orgs/{world['pool']}/cases").json
    holders = {i["id"]: (i["holder"] or {}).get("id") for i in view["items"]}
    assert holders == {pooled_case: None, held: world["gyn2"]}
    # The title only of the case the coordinator may open (the pool's), not of one a member holds elsewhere.
    titles = {i["id"]: i["title"] for i in view["items"]}
    assert titles[pooled_case] is not None
    assert titles[held] is None
    assert api_as(world["coord"]).get(f"/api/cases/{held}").status_code == 404
    counts = {m["user"]["id"]: m["open_cases"] for m in view["members"]}
    assert counts == {world["coord"]: 0, world["gyn"]: 0, world["gyn2"]: 1}
    assert api_as(world["gyn"]).get(f"/api/orgs/{world['pool']}/cases").status_code == 403  # members: their own
    assert api_as(world["cadmin"]).get(f"/api/orgs/{world['pool']}/cases").status_code == 200  # admins too
    assert api_as(world["cadmin"]).get(f"/api/orgs/{world['consortium']}/cases").status_code == 403
    assert api_as(world["outsider"]).get(f"/api/orgs/{world['pool']}/cases").status_code == 404


def test_due_clock_pauses_while_information_is_requested(app, world, pooled_case, api_as):
    coord, gyn, gp = api_as(world["coord"]), api_as(world["gyn"]), api_as(world["gp"])
    coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn"]})
    gyn.post(f"/api/cases/{pooled_case}/accept")
    assert gyn.post(f"/api/cases/{pooled_case}/questions", json={"question": "请补充超声报告"}).status_code == 200
    with app.app_context():
        case = db.session.get(Case, pooled_case)
        due = case.due_at
        assert case.paused_at is not None
        # The question has been waiting 30 hours, and the case was due an hour ago: not overdue while paused.
        db.session.execute(sa.update(Case).where(Case.id == pooled_case).values(
            paused_at=utcnow() - timedelta(hours=30), due_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
    assert gp.get(f"/api/cases/{pooled_case}").json["overdue"] is False
    assert gp.post(f"/api/cases/{pooled_case}/answers", json={"answer": "已上传"}).status_code == 200
    with app.app_context():
        case = db.session.get(Case, pooled_case)
        assert case.paused_at is None
        assert case.paused_seconds >= 30 * 3600 - 5
        assert abs((case.due_at - (utcnow() + timedelta(hours=29))).total_seconds()) < 60
    assert due is not None
    assert gp.get(f"/api/cases/{pooled_case}").json["overdue"] is False


def test_consortium_due_hours_set_the_due_time(app, world, make_case, api_as):
    api_as(world["cadmin"]).patch(f"/api/orgs/{world['consortium']}", json={"due_hours": {"urgent": 10}})
    case_id = make_case(world["gp"], specialty="gynecology", urgency="urgent")
    api_as(world["gp"]).post(f"/api/cases/{case_id}/share", json={"org_id": world["consortium"]})
    with app.app_context():
        case = db.session.get(Case, case_id)
        assert abs((case.due_at - case.submitted_at) - timedelta(hours=10)) < timedelta(seconds=1)


def test_the_coordinator_does_not_read_an_amendments_reason_in_the_timeline(world, pooled_case, api_as):
    coord, gyn, gp = api_as(world["coord"]), api_as(world["gyn"]), api_as(world["gp"])
    assert coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn"]}).status_code == 200
    assert gyn.post(f"/api/cases/{pooled_case}/accept").status_code == 200
    assert gyn.post(f"/api/cases/{pooled_case}/opinion", json={"diagnosis": "子宫肌瘤",
                                                               "recommendations": "随访"}).status_code == 200
    reason = "病理回报：诊断更正为子宫肉瘤"  # the opinion's own words, which the coordinator may not read
    assert gyn.post(f"/api/cases/{pooled_case}/opinion/amendments",
                    json={"reason": reason, "diagnosis": "子宫肉瘤"}).status_code == 201
    assert coord.get(f"/api/cases/{pooled_case}/opinion").status_code == 403
    for path in (f"/api/cases/{pooled_case}/timeline", f"/cases/{pooled_case}"):
        seen = coord.get(path)
        assert seen.status_code == 200, path
        assert "子宫肉瘤" not in (str(seen.json) if seen.is_json else seen.get_data(as_text=True)), path
    amended = [e for e in coord.get(f"/api/cases/{pooled_case}/timeline").json["items"]
               if e["action"] == "opinion_amended"]
    assert [e["note"] for e in amended] == [None]  # the step is shown, not its reason
    owner_sees = [e["note"] for e in gp.get(f"/api/cases/{pooled_case}/timeline").json["items"]]
    assert reason in owner_sees
    assert reason in gp.get(f"/cases/{pooled_case}").get_data(as_text=True)


def test_a_specialist_removed_from_the_pool_loses_the_case_waiting_for_them(app, world, pooled_case, api_as):
    coord, gyn, cadmin = api_as(world["coord"]), api_as(world["gyn"]), api_as(world["cadmin"])
    assert coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn"]}).status_code == 200
    assert cadmin.delete(f"/api/orgs/{world['pool']}/members/{world['gyn']}").status_code == 204
    # Not accepted yet: the case goes back to the pool's queue rather than wait on someone who left
    # (the coordinator could neither reassign it nor return it; only the specialist could decline).
    assert gyn.get(f"/api/cases/{pooled_case}").status_code == 404
    assert gyn.post(f"/api/cases/{pooled_case}/accept").status_code == 404
    assert [i["id"] for i in coord.get(f"/api/orgs/{world['pool']}/queue").json["items"]] == [pooled_case]
    case = api_as(world["gp"]).get(f"/api/cases/{pooled_case}").json
    assert (case["status"], case["consultant"], case["pool"]["id"]) == ("submitted", None, world["pool"])
    last = api_as(world["gp"]).get(f"/api/cases/{pooled_case}/routing").json["items"][-1]
    assert (last["kind"], last["chosen_user_id"], last["actor_id"]) == ("returned", world["gyn"], world["cadmin"])
    assert kinds_of(app, world["coord"]).count("pool_queued") == 2
    # The owner's page says why it went back: nobody declined it.
    page = api_as(world["gp"]).get(f"/cases/{pooled_case}").get_data(as_text=True)
    assert "因指定专家离开会诊组，病例退回分诊队列" in page
    assert "婉拒，病例退回分诊队列" not in page
    assert coord.post(f"/api/cases/{pooled_case}/assign", json={"specialist_id": world["gyn2"]}).status_code == 200
    # A case they had accepted stays theirs: the consultation is under way.
    assert api_as(world["gyn2"]).post(f"/api/cases/{pooled_case}/accept").status_code == 200
    assert cadmin.delete(f"/api/orgs/{world['pool']}/members/{world['gyn2']}").status_code == 204
    assert api_as(world["gyn2"]).get(f"/api/cases/{pooled_case}").json["status"] == "accepted"


def test_a_pool_only_the_cases_owner_coordinates_is_not_watched_for_it(world, make_case, api_as):
    cadmin, gp = api_as(world["cadmin"]), api_as(world["gp"])
    # The referring doctor coordinates the pool, alone: nobody could assign their case (an owner
    # may not assign their own), so it must not wait in that queue.
    assert cadmin.post(f"/api/orgs/{world['pool']}/members", json={"user_id": world["gp"],
                                                                   "role": "coordinator"}).status_code == 201
    assert cadmin.delete(f"/api/orgs/{world['pool']}/members/{world['coord']}").status_code == 204
    for org in (world["consortium"], world["pool"]):
        case_id = make_case(world["gp"], specialty="gynecology")
        r = gp.post(f"/api/cases/{case_id}/share", json={"org_id": org})
        assert r.status_code == 422, (org, r.json)
        assert gp.get(f"/api/cases/{case_id}").json["status"] == "draft"
    # Another doctor's case does go there: the gp can triage it.
    theirs = make_case(world["gyn"], specialty="gynecology")
    assert api_as(world["gyn"]).post(f"/api/cases/{theirs}/share", json={"org_id": world["pool"]}).status_code == 200
    assert [i["id"] for i in gp.get(f"/api/orgs/{world['pool']}/queue").json["items"]] == [theirs]
