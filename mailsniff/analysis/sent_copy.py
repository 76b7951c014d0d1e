"""The Sent copy: an SMTP transaction and the IMAP APPEND of the same message, side by side.

A mail client sends a message through SMTP and files its own copy in the Sent folder through
IMAP APPEND. When one capture holds both, the two are the same message (same Message-ID, or the
same body when there is none), and comparing them answers, from the wire alone, what the client
really did with each recipient: what the envelope said (RCPT TO), what the sent headers said
(To/Cc/Bcc of the DATA), and what the client kept in its Sent copy (a Bcc header is often kept
there although it was stripped from what was sent).

The two sides come from different sessions that may end in either order, so the comparison is
made when the second one is known: `SentCopyIndex` keeps a bounded index of the candidates seen
so far (keyed by Message-ID or body hash) and returns each new link once. `SentCopies` is what a
run uses: it makes the links as sessions end, counts each once in the run's `Summary`, and keeps
them by session for the views that show the sessions at the end (console, --plain, report), so
every output takes the count and the links from the same place.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailsniff.analysis.bcc import normalise_address
from mailsniff.analysis.summary import Summary
from mailsniff.model import Message, Session

__all__ = [
    "Candidate",
    "CopySide",
    "PackedCandidate",
    "RecipientView",
    "SentCopies",
    "SentCopy",
    "SentCopyIndex",
    "candidates",
    "compare",
    "describe_side",
    "match_key",
    "pack",
    "title",
]

#: Candidates kept per side (SMTP messages, IMAP APPENDs) while their other half is awaited.
MAX_CANDIDATES = 10_000
#: Links kept by session for the views that render at the end (each is still counted).
MAX_KEPT_LINKS = 10_000
#: Recipients compared per link (a mass mailing lists more; the rest is counted).
MAX_RECIPIENTS = 1_000

_LABELS = ("To", "Cc", "Bcc")


def match_key(message: Message) -> tuple[str, str] | None:
    """("message-id", id) or ("body-sha256", hash) for a message, None when it has neither."""
    mid = (message.message_id or "").strip()
    if mid:
        return "message-id", mid.strip("<>").strip()
    if message.body_sha256 is not None:
        return "body-sha256", message.body_sha256
    return None


def _headers(message: Message) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for label, addrs in zip(_LABELS, (message.to, message.cc, message.bcc), strict=True):
        out[label] = [(a.address, a.name) for a in addrs[:MAX_RECIPIENTS] if a.address.strip()]
    return out


@dataclass(slots=True, frozen=True)
class CopySide:
    """Where one half of a link is: its session and its place in it."""

    protocol: str  # "smtp" or "imap"
    session: int
    uid: str | None
    #: SMTP: the transaction's index in the session; IMAP: the message's index.
    index: int
    #: IMAP: the mailbox the copy was filed in, its UID, flags and the server's answer.
    mailbox: str | None = None
    imap_uid: int | None = None
    flags: tuple[str, ...] = ()
    outcome: str | None = None
    sha256: str = ""
    size: int = 0


@dataclass(slots=True, frozen=True)
class Candidate:
    """What the comparison needs of one SMTP message or IMAP APPEND (small, picklable)."""

    side: CopySide
    kind: str  # "message-id" / "body-sha256"
    key: str
    #: SMTP: RCPT TO addresses with their outcome ("accepted", "rejected", ...); IMAP: empty.
    envelope: tuple[tuple[str, str], ...]
    headers: dict[str, list[tuple[str, str]]]
    mail_from: str | None = None


@dataclass(slots=True, frozen=True)
class RecipientView:
    """One recipient across the three places: envelope, sent headers, Sent copy."""

    address: str
    role: str  # "To", "Cc" or "Bcc": how the recipient was addressed
    envelope: str | None  # RCPT TO outcome ("accepted", "rejected", ...), None: not in RCPT TO
    sent_headers: tuple[str, ...]  # the headers of what was sent that list it
    sent_copy_headers: tuple[str, ...]  # the headers of the Sent copy that list it
    text: str  # the sentence the console shows


@dataclass(slots=True, frozen=True)
class SentCopy:
    """An SMTP transaction and the IMAP APPEND that filed the same message."""

    matched_by: str  # "message-id" or "body-sha256"
    key: str
    smtp: CopySide
    imap: CopySide
    recipients: tuple[RecipientView, ...]
    #: The Sent copy is byte for byte the message sent.
    identical: bool
    #: Recipients beyond MAX_RECIPIENTS not compared.
    recipients_dropped: int = 0


def candidates(session: Session) -> list[Candidate]:
    """The session's SMTP messages and IMAP APPENDs that a Sent-copy link may join."""
    out: list[Candidate] = []
    protocol = str(session.protocol)
    for i, tx in enumerate(session.transactions):
        if tx.message is None or (found := match_key(tx.message)) is None:
            continue
        side = CopySide(
            "smtp", session.id, session.uid, i, sha256=tx.message.sha256, size=tx.message.size
        )
        envelope = tuple((r.address, r.status) for r in tx.rcpts[:MAX_RECIPIENTS])
        out.append(Candidate(side, *found, envelope, _headers(tx.message), mail_from=tx.mail_from))
    for j, r in enumerate(session.messages):
        if r.imap is None or r.imap.source != "APPEND" or r.partial:
            continue
        if (found := match_key(r.message)) is None:
            continue
        side = CopySide(
            protocol,
            session.id,
            session.uid,
            j,
            mailbox=r.imap.mailbox,
            imap_uid=r.imap.uid,
            flags=tuple(r.imap.flags),
            outcome=r.imap.outcome,
            sha256=r.message.sha256,
            size=r.message.size,
        )
        out.append(Candidate(side, *found, (), _headers(r.message)))
    return out


def _where(headers: dict[str, list[tuple[str, str]]], key: str) -> tuple[str, ...]:
    return tuple(
        label for label in _LABELS if any(normalise_address(a) == key for a, _ in headers[label])
    )


def _sentence(
    role: str, address: str, envelope: str | None, sent: tuple[str, ...], copy: tuple[str, ...]
) -> str:
    if envelope is None:
        env = "not in RCPT TO"
    elif envelope == "accepted":
        env = "in RCPT TO"
    elif envelope == "unknown":
        env = "in RCPT TO (the reply was not captured)"
    else:
        env = f"in RCPT TO ({envelope})"
    sent_text = f"in the sent headers as {'/'.join(sent)}" if sent else "not in the sent headers"
    if not copy:
        copy_text = "not in the Sent copy"
    elif copy == sent:
        copy_text = f"the same in the Sent copy ({'/'.join(copy)})"
    elif "Bcc" in copy and not sent:
        copy_text = "kept as a Bcc header in the Sent copy"
    else:
        copy_text = f"as {'/'.join(copy)} in the Sent copy"
    return f"{role} {address}: {env}, {sent_text}, {copy_text}"


def compare(smtp: Candidate, imap: Candidate) -> SentCopy:
    """Per recipient: the envelope, the sent headers and the Sent copy, in that order of
    appearance (envelope first, then header-only addresses)."""
    order: dict[str, str] = {}  # normalised -> as first written
    envelope: dict[str, str] = {}
    for address, status in smtp.envelope:
        key = normalise_address(address)
        order.setdefault(key, address.strip().strip("<>"))
        envelope.setdefault(key, status)
    for headers in (smtp.headers, imap.headers):
        for label in _LABELS:
            for address, _ in headers[label]:
                order.setdefault(normalise_address(address), address)
    views: list[RecipientView] = []
    for key, address in list(order.items())[:MAX_RECIPIENTS]:
        sent, copy = _where(smtp.headers, key), _where(imap.headers, key)
        role = (copy or sent or ("Bcc",))[0]
        outcome = envelope.get(key)
        views.append(
            RecipientView(
                address, role, outcome, sent, copy, _sentence(role, address, outcome, sent, copy)
            )
        )
    return SentCopy(
        smtp.kind,
        smtp.key,
        smtp.side,
        imap.side,
        tuple(views),
        identical=smtp.side.sha256 == imap.side.sha256 and smtp.side.size == imap.side.size,
        recipients_dropped=max(0, len(order) - MAX_RECIPIENTS),
    )


#: A Candidate as the index keeps it: (side, kind, key, its fields pickled, all but the session
#: id, which is kept beside it). Side is "smtp" or "imap" (the protocol of an APPEND's session may
#: be another name for IMAP). A --jobs worker packs its sessions' candidates, so that the parent
#: only files bytes away.
PackedCandidate = tuple[str, str, str, bytes]


def pack(found: list[Candidate]) -> list[PackedCandidate]:
    """The candidates as the index keeps them (their session is given again to `add_packed`)."""
    return [_pack_one(c) for c in found]


def _pack_one(cand: Candidate) -> PackedCandidate:
    # Pickled as plain tuples: a dataclass goes through copyreg and an interpreted
    # __getstate__ each time, about five times as slow for these.
    c = cand.side
    side = (c.protocol, c.uid, c.index, c.mailbox, c.imap_uid, c.flags, c.outcome, c.sha256, c.size)
    values = (side, cand.kind, cand.key, cand.envelope, cand.headers, cand.mail_from)
    half = "smtp" if c.protocol == "smtp" else "imap"
    return half, cand.kind, cand.key, pickle.dumps(values, pickle.HIGHEST_PROTOCOL)


def _unpack(session: int, blob: bytes) -> Candidate:
    """A kept candidate, read back, with its session's final id."""
    side, kind, key, envelope, headers, mail_from = pickle.loads(blob)
    protocol, uid, index, mailbox, imap_uid, flags, outcome, sha256, size = side
    return Candidate(
        CopySide(protocol, session, uid, index, mailbox, imap_uid, flags, outcome, sha256, size),
        kind,
        key,
        envelope,
        headers,
        mail_from,
    )


@dataclass(slots=True)
class SentCopyIndex:
    """Candidates seen so far, by key, on each side; bounded (oldest keys forgotten first).

    Each is kept pickled (about a quarter of the memory of its objects: most never meet their
    other half) with its session's id, and read back only when a match comes.
    """

    max_candidates: int = MAX_CANDIDATES
    _sides: dict[str, OrderedDict[tuple[str, str], list[tuple[int, bytes]]]] = field(
        default_factory=lambda: {"smtp": OrderedDict(), "imap": OrderedDict()}
    )
    _sizes: dict[str, int] = field(default_factory=lambda: {"smtp": 0, "imap": 0})
    #: Candidates forgotten to stay within the bound (a link to them can no longer be made).
    forgotten: int = 0

    def add(self, found: list[Candidate]) -> list[SentCopy]:
        """Index candidates (of finished sessions); return the links they complete (each once)."""
        links: list[SentCopy] = []
        for cand in found:
            self._file(cand.side.session, _pack_one(cand), links)
        return links

    def add_packed(self, session: int, found: list[PackedCandidate]) -> list[SentCopy]:
        """`add` for candidates already packed (`pack`), of the session numbered `session`."""
        links: list[SentCopy] = []
        for packed in found:
            self._file(session, packed, links)
        return links

    def _file(self, session: int, packed: PackedCandidate, links: list[SentCopy]) -> None:
        mine, kind, key, blob = packed
        other = "imap" if mine == "smtp" else "smtp"
        matches = self._sides[other].get((kind, key), ())
        if matches:
            cand = _unpack(session, blob)
            for kept_session, kept in matches:
                match = _unpack(kept_session, kept)
                smtp, imap = (cand, match) if mine == "smtp" else (match, cand)
                links.append(compare(smtp, imap))
        self._sides[mine].setdefault((kind, key), []).append((session, blob))
        self._sizes[mine] += 1
        while self._sizes[mine] > self.max_candidates:
            _, dropped = self._sides[mine].popitem(last=False)
            self._sizes[mine] -= len(dropped)
            self.forgotten += len(dropped)


def describe_side(side: CopySide) -> str:
    """ "session 3, transaction 1" / "session 4, APPEND Sent (UID 3, OK)"."""
    if side.protocol == "smtp":
        return f"session {side.session}, transaction {side.index + 1}"
    extra = [f"UID {side.imap_uid}"] if side.imap_uid is not None else []
    if side.outcome is not None:
        extra.append(side.outcome)
    more = f" ({', '.join(extra)})" if extra else ""
    return f"session {side.session}, APPEND {side.mailbox or '?'}{more}"


def title(link: SentCopy, session_id: int) -> str:
    """The link as seen from one of its two sessions: "Sent copy of transaction 1: filed by
    session 2, APPEND Sent (UID 1, OK)" / "Sent copy session 2, ...: sent by session 1, ..."."""
    if link.smtp.session == session_id:
        filed = describe_side(link.imap)
        return f"Sent copy of transaction {link.smtp.index + 1}: filed by {filed}"
    return f"Sent copy {describe_side(link.imap)}: sent by {describe_side(link.smtp)}"


@dataclass(slots=True)
class SentCopies:
    """The Sent-copy links of one run: made as sessions end (in any order), each counted once
    in `summary`, and kept by session (the first MAX_KEPT_LINKS) when `keep` is set, for the
    views that show sessions after the reading.

    `shown`: the session ids shown (--session); a link is counted and kept only when one of
    its halves is shown, although every session is indexed (the other half may be hidden).
    """

    summary: Summary
    shown: frozenset[int] | None = None
    keep: bool = False
    index: SentCopyIndex = field(default_factory=SentCopyIndex)
    by_session: dict[int, list[SentCopy]] = field(default_factory=dict)
    kept: int = 0

    def add(self, found: list[Candidate]) -> list[SentCopy]:
        """Index one session's candidates; the links they complete, counted once."""
        return self._counted(self.index.add(found) if found else [])

    def add_packed(self, session: int, found: list[PackedCandidate]) -> list[SentCopy]:
        """`add` for the packed candidates of the session numbered `session` (a --jobs
        worker's)."""
        return self._counted(self.index.add_packed(session, found) if found else [])

    def _counted(self, links: list[SentCopy]) -> list[SentCopy]:
        if self.shown is not None:
            shown = self.shown
            links = [x for x in links if x.smtp.session in shown or x.imap.session in shown]
        self.summary.sent_copies += len(links)
        if self.keep:
            for link in links[: max(0, MAX_KEPT_LINKS - self.kept)]:
                self.kept += 1
                for side in (link.smtp.session, link.imap.session):
                    self.by_session.setdefault(side, []).append(link)
        return links

    def session_done(self, session: Session) -> list[SentCopy]:
        """`add` for a finished session (analysed in this process)."""
        return self.add(candidates(session))

    def of(self, session_id: int) -> Sequence[SentCopy]:
        """The kept links a session is one half of."""
        return self.by_session.get(session_id, ())
