"""`mailsniff live --extract/--mbox/--creds/--redact`: the same evidence as from a file."""

from __future__ import annotations

import base64
import hashlib
import json
import mailbox
import signal
from pathlib import Path

from mailsniff.export.redact import MASK
from tests.export.schemas import validated
from tests.live.test_live import MESSAGE, _is_session, _send_with_auth_login, live, smtp  # noqa: F401
from tests.servers import SMTP_PASSWORD, SMTP_USER, SmtpServer


def test_live_extracts_the_message_and_lists_redacted_credentials(
    smtp: SmtpServer,  # noqa: F811
    tmp_path: Path,
) -> None:
    out, box_path = tmp_path / "evidence", tmp_path / "live.mbox"
    args = ["--json", "--creds", "--redact", "--extract", str(out), "--mbox", str(box_path)]
    with live(*args, "--ports", str(smtp.port)) as lp:
        _send_with_auth_login(smtp)
        lp.next_stdout(_is_session)
        status, lines, stderr = lp.finish(signal.SIGINT)
    assert status == 0, stderr
    records = [json.loads(line) for line in lines]
    (cred,) = [validated(r, "creds") for r in records if r["type"] == "credential"]
    assert (cred["mechanism"], cred["username"], cred["password"]) == ("LOGIN", SMTP_USER, MASK)
    assert cred["worked"] is True and cred["count"] == 1

    sent = MESSAGE.encode("ascii")
    digest = hashlib.sha256(sent).hexdigest()
    assert (out / f"{digest}.eml").read_bytes() == sent
    manifest = (out / "manifest.jsonl").read_bytes().splitlines()
    (entry,) = [validated(json.loads(x), "manifest") for x in manifest]
    assert entry["sha256"] == digest and entry["envelope"]["bcc"] == ["hidden@example.com"]
    box = mailbox.mbox(box_path)
    assert [box[k]["Subject"] for k in box.keys()] == ["quarterly numbers"]
    box.close()

    everything = "".join(lines).encode() + stderr.encode()
    everything += b"".join(p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file())
    everything += box_path.read_bytes()
    secret = SMTP_PASSWORD.encode()
    assert secret not in everything and base64.b64encode(secret) not in everything
