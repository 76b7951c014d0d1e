"""Time message parsing (RFC 5322/2045/2046) and print messages per second and MB per second.

Usage: PYTHONPATH=. python benchmarks/mime_speed.py [--messages 300] [--big-mb 15]

Workloads: (a) the benchmark generator's ~32 KB multipart messages with a base64 attachment,
fed through MessageAccumulator in 1460-byte chunks as a session would; (b) one message of
`--big-mb` MB with a single large base64 attachment; (c) the same message as (a) with a
quoted-printable text part and an 8bit attachment, built by the stdlib; (d) one attachment whose
Content-Disposition filename is written as n RFC 2231 continuations, n doubling: the time per
message should double with n (linear), where the stdlib's parameter parser quadruples. Rates are
per CPU second of this process (time.process_time).
"""

from __future__ import annotations

import argparse
import base64
import random
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_capture import AttachmentPool, build_message  # noqa: E402

from mailsniff.mail.mime import MessageAccumulator, parse_message  # noqa: E402


def generator_messages(count: int) -> list[bytes]:
    rng = random.Random(7)
    pool = AttachmentPool(rng)
    return [
        build_message(rng, pool, i, "a@example.org", ["b@example.org"], [], 1_767_225_600_000_000)
        for i in range(count)
    ]


def big_message(megabytes: int) -> bytes:
    rng = random.Random(9)
    data = rng.randbytes(megabytes * 1024 * 1024 * 3 // 4)
    boundary = b"=_big_boundary_42"
    return (
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n'
        b"--" + boundary + b"\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--" + boundary + b"\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="big.bin"\r\n\r\n'
        + base64.encodebytes(data).replace(b"\n", b"\r\n")
        + b"--"
        + boundary
        + b"--\r\n"
    )


def stdlib_messages(count: int) -> list[bytes]:
    rng = random.Random(11)
    out = []
    for i in range(count):
        msg = EmailMessage()
        msg["From"] = "Alice <alice@example.org>"
        msg["To"] = "bob@example.org"
        msg["Subject"] = f"mixed {i}"
        msg.set_content("caf\u00e9 " * 2000, cte="quoted-printable")
        msg.add_attachment(rng.randbytes(20_000), maintype="image", subtype="png", filename="a.png")
        msg.add_attachment(("x" * 70 + "\n") * 100, filename="notes.txt", cte="8bit")
        out.append(msg.as_bytes(policy=msg.policy.clone(linesep="\r\n")))
    return out


def rfc2231_message(sections: int) -> bytes:
    continued = b"".join(b";\r\n filename*%d*=%%41" % i for i in range(sections))
    return (
        b"From: a@example.org\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
        b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment"
        + continued
        + b"\r\n\r\nx\r\n--XX--\r\n"
    )


def rfc2231_scaling(largest: int) -> None:
    """Time parse_message on ever more continuations; print the ratio to the previous size."""
    previous = None
    sections = largest // 8
    while sections <= largest:
        raw = rfc2231_message(sections)
        start = time.process_time()
        msg = parse_message(raw)
        elapsed = time.process_time() - start
        assert msg.attachments[0].filename == "A" * sections
        ratio = f"x{elapsed / previous:4.1f}" if previous else ""
        print(f"(d) {sections:>7} RFC 2231 continuations {elapsed:8.3f} s {ratio}")
        previous = elapsed
        sections *= 2


def via_accumulator(raw: bytes) -> None:
    acc = MessageAccumulator()
    for i in range(0, len(raw), 1460):
        acc.feed(raw[i : i + 1460])
    acc.finish()


def measure(name: str, messages: list[bytes], parse: Callable[[bytes], object]) -> None:
    total = sum(len(m) for m in messages)
    start = time.process_time()
    rounds = 0
    while True:
        for raw in messages:
            parse(raw)
        rounds += 1
        elapsed = time.process_time() - start
        if elapsed > 1.0:
            break
    count = len(messages) * rounds
    print(
        f"{name:<44} {count / elapsed:10.0f} msg/s {total * rounds / elapsed / 1e6:9.1f} MB/s "
        f"{elapsed / count * 1e3:8.3f} ms/msg"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--big-mb", type=int, default=15)
    parser.add_argument("--continuations", type=int, default=400_000)
    args = parser.parse_args(argv)
    generated = generator_messages(args.messages)
    measure("(a) generator, parse_message", generated, parse_message)
    measure("(a) generator, accumulator 1460-byte chunks", generated, via_accumulator)
    measure(f"(b) {args.big_mb} MB base64 attachment", [big_message(args.big_mb)], parse_message)
    measure("(c) stdlib-built qp + 8bit + base64", stdlib_messages(50), parse_message)
    rfc2231_scaling(args.continuations)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
