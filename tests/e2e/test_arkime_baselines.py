"""Arkime captures: the decoded email.* fields of its expected session documents.

Arkime lower-cases host names and header names and lists unique values. `"SET"` means present,
value not compared. Arkime publishes md5 and sha256 of attachments: we publish sha256 only, so
md5 is not compared (the sha256 of the same bytes is).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.cli_runner import read_json
from tests.paths import PUBLIC

ARKIME = PUBLIC / "arkime"
DOCS = sorted(ARKIME.glob("*.arkime.test.json"))


def capture_for(doc: Path) -> Path:
    return doc.with_name(doc.name.replace(".arkime.test.json", ".pcap"))


def expected_docs(doc: Path) -> list[dict[str, Any]]:
    return [s["body"] for s in json.loads(doc.read_text())["sessions3"]]


@cache
def sessions(capture: Path) -> tuple[dict[str, Any], ...]:
    return tuple(read_json(capture))


def cases(level: str) -> list[Any]:
    """One case per session document Arkime published (`level` names the test's concern)."""
    out = []
    for doc in DOCS:
        stem = doc.name.split(".")[0]
        for index in range(len(expected_docs(doc))):
            out.append(pytest.param(doc, index, id=f"{stem}-{index}"))
    return out


def session_for(doc: Path, body: dict[str, Any]) -> dict[str, Any]:
    src, dst = body["source"], body["destination"]
    found = [
        s
        for s in sessions(capture_for(doc))
        if (s["client"]["ip"], s["client"]["port"], s["server"]["ip"], s["server"]["port"])
        == (src["ip"], src["port"], dst["ip"], dst["port"])
    ]
    assert len(found) == 1, f"no session {src['ip']}:{src['port']} -> {dst['ip']}:{dst['port']}"
    return found[0]


def lower(values: list[str]) -> set[str]:
    return {v.lower() for v in values}


def addresses(entries: list[dict[str, str]]) -> set[str]:
    return {a["address"].lower() for a in entries if a["address"]}


def test_there_are_arkime_documents() -> None:
    assert len(DOCS) == 9


@pytest.mark.parametrize(("doc", "index"), cases("session"))
def test_session_level_fields(doc: Path, index: int) -> None:
    body = expected_docs(doc)[index]
    session = session_for(doc, body)
    assert session["protocol"] == "smtp" and "smtp" in body["protocol"]
    email = body.get("email", {})
    if "smtpHello" in email:
        assert session["helo"] is not None and session["helo"].lower() == email["smtpHello"][0]
    tags = body.get("tags", [])
    if "smtp:starttls" in tags:
        assert session["tls"] is True
    if "smtp:authplain" in tags:
        assert [a["mechanism"] for a in session["auth"]] == ["PLAIN"]
    if "smtp:authlogin" in tags:
        assert [a["mechanism"] for a in session["auth"]] == ["LOGIN"]
    if "user" in body:
        assert [a["username"] for a in session["auth"]] == body["user"]
    for tag in tags:
        if tag.startswith("smtp:statuscode:"):
            code = tag.rsplit(":", 1)[1]
            replies = [t["data_reply"] or "" for t in session["transactions"]]
            replies += [t["mail_from_reply"] or "" for t in session["transactions"]]
            replies += [r["reply"] or "" for t in session["transactions"] for r in t["rcpts"]]
            replies += [a["reply"] or "" for a in session["auth"]]
            assert any(r.startswith(code) for r in replies), tag


@pytest.mark.parametrize(("doc", "index"), cases("message"))
def test_message_fields(doc: Path, index: int) -> None:
    body = expected_docs(doc)[index]
    email = body.get("email", {})
    session = session_for(doc, body)
    if "subject" not in email and "src" not in email:
        assert all(t["message"] is None for t in session["transactions"])
        return
    [tx] = [t for t in session["transactions"] if t["message"] is not None]
    message = tx["message"]
    # email.src / email.dst: MAIL FROM and header From / RCPT TO and header To, Cc
    if "src" in email:
        assert lower(email["src"]) == {tx["mail_from"].lower()} | addresses(message["from"])
    if "dst" in email:
        headers_to = addresses(message["to"]) | addresses(message["cc"])
        assert lower(email["dst"]) == lower(tx["rcpt_to"]) | headers_to
    if "subject" in email:
        assert [message["subject"]] == email["subject"]
    if "id" in email:
        assert message["message_id"] == f"<{email['id'][0]}>"
    if "header" in email:
        assert {name.lower() for name, _ in message["headers"]} == set(email["header"])
    if "useragent" in email:
        agents = [v for k, v in message["headers"] if k.lower() in ("user-agent", "x-mailer")]
        assert agents == email["useragent"]
    if "contentType" in email:
        # Arkime turns the folding tab into a space
        ours = [" ".join(v.split()) for k, v in message["headers"] if k.lower() == "content-type"]
        assert ours == email["contentType"]
    if "mimeVersion" in email:
        assert [v for k, v in message["headers"] if k.lower() == "mime-version"] == email[
            "mimeVersion"
        ]
    if "reply-to" in email.get("headerField", []):
        assert message["reply_to"], "Reply-To header expected"
    if "filename" in email:
        assert sorted(a["filename"] for a in message["attachments"]) == sorted(email["filename"])
        # sha256 over the decoded attachment; md5 is not published by mailsniff
        assert {a["sha256"] for a in message["attachments"]} == set(email["sha256"])


def test_data_521_reply_to_and_rejection() -> None:
    doc = ARKIME / "smtp-data-521.arkime.test.json"
    [body] = expected_docs(doc)
    session = session_for(doc, body)
    [tx] = session["transactions"]
    assert tx["data_reply"].startswith("521 5.2.1 ")
    # headerValue holds '"1234567899@aol.com" <1234567899@aol.com>' for reply-to
    assert tx["message"]["reply_to"] == [
        {"name": "1234567899@aol.com", "address": "1234567899@aol.com"}
    ]
    [auth] = session["auth"]
    assert auth["success"] is True and auth["username"] == "123456789@aol.com"


def test_subject_windows_raw_8bit_byte() -> None:
    doc = ARKIME / "smtp-subject-windows.arkime.test.json"
    [body] = expected_docs(doc)
    message = session_for(doc, body)["transactions"][0]["message"]
    assert message["subject"] == "Awesome windows: See What\u2019s Next in charset decoding!"


def test_decrypted_sessions_before_starttls() -> None:
    # what was sent in clear before STARTTLS must survive: 4 sessions, helo, STARTTLS accepted
    doc = ARKIME / "smtp-decrypted.arkime.test.json"
    for body in expected_docs(doc):
        session = session_for(doc, body)
        assert session["tls"] is True
        assert session["helo"].lower() == body["email"]["smtpHello"][0]
        assert session["banner"].startswith("220 PCIAT-MX.shewa.intradef.gouv.fr Microsoft ESMTP")
