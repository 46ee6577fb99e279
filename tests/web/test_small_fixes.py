"""Raw UTF-8 in a query string, and the site icon."""

import json
import socket

from tests.support.live import ThreadServer


def _names(port: int, token: str, target: bytes) -> list[str]:
    """GET the target with its bytes exactly as given and return the names found."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                  b"Authorization: Bearer " + token.encode() + b"\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return [u["name"] for u in json.loads(body)["items"]]


def test_raw_utf8_in_the_query_finds_what_the_percent_encoded_form_finds(app, make_user, token_for,
                                                                         make_institution):
    inst = make_institution(name="长沙市第一医院", region="湖南省 长沙市")
    make_user(specialty="gynecology", name="王静怡", institution_id=inst)
    token = token_for(make_user())
    with ThreadServer(app) as live:
        found = {form: _names(live.port, token, target) for form, target in (
            ("encoded", b"/api/specialists?q=%E9%95%BF%E6%B2%99"),
            ("raw", "/api/specialists?q=长沙".encode()))}  # raw UTF-8 bytes in the request line, as curl sends
    assert found["encoded"] == ["王静怡"]
    assert found["raw"] == found["encoded"]


def test_the_favicon_is_served(client):
    r = client.get("/favicon.ico")
    assert r.status_code == 200
    assert r.mimetype == "image/svg+xml"
    assert b"<svg" in r.data
    assert b'rel="icon"' in client.get("/login").data
