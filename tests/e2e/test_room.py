"""The room panel after a lost connection: the missed messages arrive once, in order."""

from playwright.sync_api import expect


def test_reconnecting_browser_catches_up_without_gaps_or_duplicates(open_as, demo, api_as, make_case):
    case_id = make_case(demo["gp"])
    api_as(demo["gp"]).post(f"/api/cases/{case_id}/share", json={"specialist_id": demo["gyn"]})
    api_as(demo["gyn"]).post(f"/api/cases/{case_id}/accept")
    gp, gyn = open_as("gp", phone=True), open_as("gyn")
    for page in (gp, gyn):
        page.goto(f"/cases/{case_id}/viewer")
        expect(page.locator("#conn-state")).to_have_class("ok")
    gyn.fill("#chat-input", "第一条")
    gyn.keyboard.press("Enter")
    expect(gp.locator("#messages li[data-seq]")).to_have_count(1)

    gp.context.set_offline(True)  # the phone loses its connection
    expect(gp.locator("#conn-state")).to_have_class("warn", timeout=30_000)
    for text in ("第二条", "第三条"):
        gyn.fill("#chat-input", text)
        gyn.keyboard.press("Enter")
    expect(gyn.locator("#messages li[data-seq]")).to_have_count(3)
    gp.fill("#chat-input", "离线时写的")  # sent once the connection is back, with the same client_id
    gp.keyboard.press("Enter")

    gp.context.set_offline(False)
    expect(gp.locator("#conn-state")).to_have_class("ok", timeout=30_000)
    expect(gp.locator("#messages li[data-seq]")).to_have_count(4)
    expect(gp.locator("#messages li[data-seq] .body")).to_have_text(["第一条", "第二条", "第三条", "离线时写的"])
    expect(gyn.locator("#messages li[data-seq] .body")).to_have_text(["第一条", "第二条", "第三条", "离线时写的"])
    expect(gp.locator("#messages li.pending")).to_have_count(0)


def test_a_hostile_client_id_stored_earlier_does_not_break_the_room(app, open_as, demo, api_as, make_case):
    """A message stored before client_ids were checked (``x"]``) once stopped every later join."""
    from app.consult.models import Message, MessageCounter
    from app.extensions import db

    case_id = make_case(demo["gp"])
    api_as(demo["gp"]).post(f"/api/cases/{case_id}/share", json={"specialist_id": demo["gyn"]})
    api_as(demo["gyn"]).post(f"/api/cases/{case_id}/accept")
    with app.app_context():  # straight into the database: the server no longer accepts it
        for seq, (client, body) in enumerate([('x"]', "恶意"), ("ok", "之后的消息")], start=1):
            db.session.add(Message(case_id=case_id, seq=seq, author_id=demo["gyn"], client_id=client, body=body))
        db.session.add(MessageCounter(case_id=case_id, last_seq=2))
        db.session.commit()
    gyn = open_as("gyn")
    gyn.goto(f"/cases/{case_id}/viewer")
    gyn.click("#present-btn")
    gp = open_as("gp")
    gp.goto(f"/cases/{case_id}/viewer")
    expect(gp.locator("#messages li[data-seq] .body")).to_have_text(["恶意", "之后的消息"])
    expect(gp.locator("#online li")).to_have_count(2)  # presence ran after the catch-up
    expect(gp.locator("#presenter-info")).to_have_attribute("data-presenter", str(demo["gyn"]))
    gp.fill("#chat-input", "还能发")
    gp.keyboard.press("Enter")
    expect(gyn.locator("#messages li[data-seq] .body")).to_have_text(["恶意", "之后的消息", "还能发"])
    expect(gp.locator("#messages li.pending")).to_have_count(0)


def test_taking_the_presenter_role_as_the_page_loads_waits_for_the_join(open_as, demo, api_as, make_case):
    """A click on 我来主讲 before the socket has joined the room was sent first on connecting, and the
    server refused it (join the case room first): the page now waits for the join."""
    case_id = make_case(demo["gp"])
    api_as(demo["gp"]).post(f"/api/cases/{case_id}/share", json={"specialist_id": demo["gyn"]})
    api_as(demo["gyn"]).post(f"/api/cases/{case_id}/accept")
    gyn = open_as("gyn")
    held, holding = [], [True]  # the socket's requests are answered only after the click

    def hold(route) -> None:
        if holding[0]:
            held.append(route)
        else:
            route.continue_()

    gyn.route("**/socket.io/**", hold)
    gyn.goto(f"/cases/{case_id}/viewer")
    gyn.click("#present-btn")
    gyn.click("#present-btn")  # impatient: the last click is sent once, after the join
    expect(gyn.locator("#conn-state")).not_to_have_class("ok")
    assert held, "the socket's requests were not held"
    holding[0] = False
    for route in held:
        route.continue_()
    expect(gyn.locator("#conn-state")).to_have_class("ok")
    expect(gyn.locator("#presenter-info")).to_have_attribute("data-presenter", str(demo["gyn"]))
    expect(gyn.locator("#chat-error")).to_have_text("")


def test_a_history_longer_than_the_joins_page_is_shown_in_full(app, open_as, demo, api_as, make_case):
    """The page showed only the first 1,000 messages of a longer room (the join's page), never the newest."""
    from app.consult.models import Message, MessageCounter
    from app.extensions import db

    case_id = make_case(demo["gp"])
    api_as(demo["gp"]).post(f"/api/cases/{case_id}/share", json={"specialist_id": demo["gyn"]})
    api_as(demo["gyn"]).post(f"/api/cases/{case_id}/accept")
    with app.app_context():
        db.session.add_all([Message(case_id=case_id, seq=n, author_id=demo["gp"], client_id=f"c{n}", body=f"第{n}条")
                            for n in range(1, 1003)])
        db.session.add(MessageCounter(case_id=case_id, last_seq=1002))
        db.session.commit()
    gyn = open_as("gyn")
    gyn.goto(f"/cases/{case_id}/viewer")
    expect(gyn.locator("#messages li[data-seq]")).to_have_count(1002, timeout=20_000)
    expect(gyn.locator("#messages li[data-seq] .body").last).to_have_text("第1002条")
