"""Real mail and DNS servers on loopback for tests: aiosmtpd, dovecot (POP3, IMAP) and dnsmasq.

Each server is a context manager that picks a free port at runtime, waits for the server to
answer with a polled deadline, and stops it on exit even when the test failed. The pytest
fixtures at the bottom wrap them; import the fixtures into a test module to use them:

    from tests.servers import smtp_server, pop3_server, dns_server  # noqa: F401
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "DNS_DOMAIN",
    "DnsServer",
    "IMAP_MESSAGES",
    "ImapServer",
    "POP3_MESSAGES",
    "Pop3Server",
    "REJECTED_RCPT",
    "SEED_553",
    "SMTP_PASSWORD",
    "SMTP_USER",
    "SmtpServer",
    "UNAUTHORIZED_SENDER",
    "dns_server",
    "free_port",
    "imap_server",
    "pop3_server",
    "running_dnsmasq",
    "running_dovecot",
    "running_dovecot_imap",
    "running_smtp",
    "smtp_server",
    "tls_files",
    "wait_for_port",
]

#: The seed's reply to a sender that must authenticate first.
SEED_553 = "553 You are not authorized to send mail, authentication is required"
#: A sender the SMTP server refuses with SEED_553 unless the session authenticated.
UNAUTHORIZED_SENDER = "forged@example.com"
#: A recipient the SMTP server refuses with 550.
REJECTED_RCPT = "nobody@example.com"
SMTP_USER = "alice@example.com"
SMTP_PASSWORD = "s3cret-pass"

POP3_USER = "bob"
POP3_PASSWORD = "pop-pass"
#: Messages put in the POP3 maildir, oldest first (CRLF line ends, as on the wire).
POP3_MESSAGES = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Bob <bob@example.com>\r\n"
    b"Subject: first message\r\n"
    b"Message-ID: <one@example.com>\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b".a line that starts with a dot\r\n"
    b"line three\r\n"
    b"line four\r\n",
    b"From: =?GBK?B?1cXI/Q==?= <zhangsan@example.com>\r\n"
    b"To: bob@example.com\r\n"
    b"Subject: =?UTF-8?B?5rWL6K+V?=\r\n"
    b"\r\n"
    b"second body\r\n",
)

#: Test DNS zone served by dnsmasq: MX hosts, a domain without MX, and NXDOMAIN below .test.
DNS_DOMAIN = "mail.test"
DNS_NO_MX = "nomx.test"
DNS_NULL_MX = "nullmx.test"
DNS_NXDOMAIN = "missing.test"

_DEADLINE = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_udp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free UDP/TCP port")


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Poll until something accepts on 127.0.0.1:port (or the process died, or the deadline)."""
    deadline = time.monotonic() + _DEADLINE
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {_DEADLINE}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def _tmpdir(prefix: str) -> Iterator[Path]:
    """A short, world-traversable directory (dovecot drops privileges; socket paths are short)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def tls_files(directory: Path, *, ecdsa: bool = False) -> tuple[Path, Path]:
    """A self-signed certificate and key for 127.0.0.1/localhost (openssl), written in directory:
    RSA 2048, or ECDSA P-256 with `ecdsa`."""
    stem = "ec-" if ecdsa else ""
    cert, key = directory / f"{stem}cert.pem", directory / f"{stem}key.pem"
    algorithm = ["ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"] if ecdsa else ["rsa:2048"]
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", *algorithm, "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def _dh_params(directory: Path) -> Path:
    """The RFC 7919 ffdhe2048 group as a DH PARAMETERS file (named, so nothing is generated)."""
    params = directory / "dh.pem"
    subprocess.run(
        ["openssl", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048",
         "-out", str(params)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return params


# --------------------------------------------------------------------------- SMTP (aiosmtpd)


@dataclass(slots=True)
class Received:
    """One message as the SMTP server accepted it."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes


@dataclass(slots=True)
class SmtpServer:
    host: str
    port: int
    received: list[Received] = field(default_factory=list)
    #: Port of the implicit-TLS listener (SMTPS), and the STARTTLS-capable plain listener's port.
    tls_port: int = 0
    cert: Path | None = None
    #: Offer PIPELINING (RFC 2920) in the EHLO reply (aiosmtpd reads commands one by one).
    pipelining: bool = True


class _Handler:
    """Accepts mail; refuses REJECTED_RCPT (550) and UNAUTHORIZED_SENDER (the seed's 553)."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        if self.server.pipelining:
            responses.insert(len(responses) - 1, "250-PIPELINING")
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() == UNAUTHORIZED_SENDER and not session.authenticated:
            return SEED_553
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.lower() == REJECTED_RCPT:
            return "550 5.1.1 No such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.server.received.append(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(content))
        )
        return "250 2.0.0 Message accepted for delivery"

    async def auth_CRAM__MD5(self, server: SMTP, args: list[str]) -> AuthResult:
        """RFC 2195 (aiosmtpd has no built-in CRAM-MD5)."""
        challenge = f"<{os.getpid()}.{time.time_ns()}@localhost>".encode()
        response = await server.challenge_auth(challenge)
        if not isinstance(response, bytes):
            return AuthResult(success=False, handled=False)
        user, _, digest = response.decode("utf-8", "replace").rpartition(" ")
        want = hmac.new(SMTP_PASSWORD.encode(), challenge, hashlib.md5).hexdigest()
        ok = user == SMTP_USER and hmac.compare_digest(digest, want)
        return AuthResult(success=ok, handled=False, auth_data=user)


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    if isinstance(auth_data, LoginPassword):
        ok = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
        return AuthResult(success=ok, handled=False)
    return AuthResult(success=False, handled=False)


class _Controller(Controller):
    """Controller that checks readiness with a plain TCP connect (works for the TLS listener)."""

    def _trigger_server(self) -> None:
        with socket.create_connection((self.hostname, self.port), timeout=5):
            pass


def _start_controller(make: Callable[[int], Controller]) -> tuple[Controller, int]:
    """Start a controller on a free port; another port when that one was taken meanwhile."""
    for attempt in range(5):
        port = free_port()
        controller = make(port)
        try:
            controller.start()
        except Exception:
            if attempt == 4:
                raise
            continue
        return controller, port
    raise AssertionError("unreachable")


@contextmanager
def running_smtp(
    *, tls: bool = True, pipelining: bool = True, ciphers: str | None = None
) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1 with AUTH LOGIN/PLAIN/CRAM-MD5 allowed without TLS.

    With tls, the plain listener offers STARTTLS and a second listener speaks implicit TLS,
    both with a self-signed certificate (SmtpServer.cert). `ciphers`: the TLS 1.2 suites the
    server accepts (OpenSSL cipher string; default: Python's, which leaves out SHA-1 and RSA
    key transport).
    """
    with _tmpdir("msmtp") as tmp:
        server = SmtpServer("127.0.0.1", 0, pipelining=pipelining)
        handler = _Handler(server)
        context: ssl.SSLContext | None = None
        if tls:
            cert, key = tls_files(tmp)
            server.cert = cert
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
            if ciphers is not None:
                context.set_ciphers(ciphers)
                # Every key exchange and signature a real server may pick: an ECDSA certificate
                # beside the RSA one, and finite-field DH (RFC 7919 ffdhe2048) for the DHE suites.
                context.load_cert_chain(*tls_files(tmp, ecdsa=True))
                context.load_dh_params(_dh_params(tmp))
        common: dict[str, Any] = {
            "authenticator": _authenticate,
            "auth_require_tls": False,
            "ident": "mailsniff-test ESMTP",
        }
        started: list[Controller] = []
        try:
            plain, server.port = _start_controller(
                lambda port: _Controller(
                    handler,
                    hostname="127.0.0.1",
                    port=port,
                    tls_context=context,
                    require_starttls=False,
                    **common,
                )
            )
            started.append(plain)
            if context is not None:
                implicit, server.tls_port = _start_controller(
                    lambda port: _Controller(
                        handler, hostname="127.0.0.1", port=port, ssl_context=context, **common
                    )
                )
                started.append(implicit)
            yield server
        finally:
            for c in started:
                c.stop()


# --------------------------------------------------------------------------- POP3 (dovecot)


@dataclass(slots=True)
class Pop3Server:
    host: str
    port: int
    user: str
    password: str
    maildir: Path
    apop: bool
    log: Path
    #: Implicit-TLS (POP3S) port; the plain port offers STLS. Self-signed certificate.
    tls_port: int = 0


_DOVECOT_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
instance_name = mailsniff-test-{port}
protocols = pop3
listen = 127.0.0.1
ssl = yes
ssl_cert = <{tmp}/cert.pem
ssl_key = <{tmp}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login apop
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{tmp}/mail/%u
pop3_uidl_format = %f
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {tmp}/passwd
}}
userdb {{
  driver = passwd-file
  args = {tmp}/passwd
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


def _spawn_dovecot(dovecot: str, conf: Path, tmp: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start dovecot on two free ports (again on others if one was taken meanwhile)."""
    for attempt in range(3):
        port, tls_port = free_port(), free_port()
        conf.write_text(_DOVECOT_CONF.format(tmp=tmp, port=port, tls_port=tls_port))
        with open(tmp / "stderr.log", "ab") as stderr:
            proc = subprocess.Popen(
                [dovecot, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        try:
            wait_for_port(port, proc)
            wait_for_port(tls_port, proc)
        except RuntimeError as error:
            _stop(proc)
            if attempt == 2:
                log = tmp / "dovecot.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(f"dovecot: {error}\n{text}") from None
            continue
        return proc, port, tls_port
    raise AssertionError("unreachable")


@contextmanager
def running_dovecot() -> Iterator[Pop3Server]:
    """dovecot POP3 (USER/PASS, APOP, STLS, POP3S; plaintext allowed) over POP3_MESSAGES."""
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    with _tmpdir("mpop") as tmp:
        nobody = 65534
        user_dir = tmp / "mail" / POP3_USER
        for sub in ("cur", "new", "tmp"):
            (user_dir / sub).mkdir(parents=True)
        for n, body in enumerate(POP3_MESSAGES):
            (user_dir / "cur" / f"{1700000000 + n}.M{n}P1.test:2,S").write_bytes(
                body.replace(b"\r\n", b"\n")
            )
        for root, dirs, files in os.walk(tmp / "mail"):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), nobody, nobody)
        os.chown(tmp / "mail", nobody, nobody)
        (tmp / "passwd").write_text(
            f"{POP3_USER}:{{PLAIN}}{POP3_PASSWORD}:{nobody}:{nobody}::{tmp}/home::\n"
        )
        conf = tmp / "dovecot.conf"
        tls_files(tmp)
        proc, port, tls_port = _spawn_dovecot(dovecot, conf, tmp)
        try:
            yield Pop3Server(
                "127.0.0.1",
                port,
                POP3_USER,
                POP3_PASSWORD,
                user_dir,
                True,
                tmp / "dovecot.log",
                tls_port,
            )
        finally:
            _stop(proc)


# --------------------------------------------------------------------------- IMAP (dovecot)

IMAP_USER = "carol"
IMAP_PASSWORD = "imap-pass"
#: Messages put in the IMAP INBOX, oldest first (CRLF line ends, as dovecot sends them).
IMAP_MESSAGES = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: Carol <carol@example.com>\r\n"
    b"Subject: first IMAP message\r\n"
    b"Message-ID: <imap-one@example.com>\r\n"
    b"\r\n"
    b"Hello Carol,\r\n"
    b") a line that would close a list\r\n"
    b"A1 OK a line that looks like a response\r\n",
    b"From: =?UTF-8?B?5byg5LiJ?= <zhangsan@example.com>\r\n"
    b"To: carol@example.com\r\n"
    b"Subject: =?UTF-8?B?5rWL6K+V?=\r\n"
    b"\r\n"
    b"second body\r\n" + b"x" * 5000 + b"\r\n",
)


@dataclass(slots=True)
class ImapServer:
    host: str
    port: int
    user: str
    password: str
    maildir: Path
    log: Path
    #: COMPRESS=DEFLATE is offered (dovecot's imap_zlib plugin is installed).
    compress: bool
    #: With `tls=True`: the implicit-TLS (IMAPS) port; the plain port then offers STARTTLS.
    tls_port: int = 0


_DOVECOT_IMAP_CONF = """\
base_dir = {tmp}/run
state_dir = {tmp}/state
log_path = {tmp}/dovecot.log
instance_name = mailsniff-imap-{port}
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
mail_location = maildir:{tmp}/mail/%u
{plugins}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {tmp}/passwd
}}
userdb {{
  driver = passwd-file
  args = {tmp}/passwd
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
{imaps}
  }}
}}
service anvil {{
  chroot =
}}
"""


def _imap_zlib() -> bool:
    """Whether dovecot's imap_zlib plugin (COMPRESS=DEFLATE, RFC 4978) is installed."""
    modules = Path("/usr/lib/dovecot/modules")
    return any(modules.glob("lib*_imap_zlib_plugin.so"))


@contextmanager
def running_dovecot_imap(port: int | None = None, *, tls: bool = False) -> Iterator[ImapServer]:
    """dovecot IMAP on 127.0.0.1 (LOGIN, AUTHENTICATE PLAIN/LOGIN, IDLE, COMPRESS=DEFLATE when
    the build has it; plaintext allowed) over IMAP_MESSAGES in INBOX and an empty Sent folder.
    `port`: tried first (pcaps/make_pcaps.py asks for 143), any free port if it is taken.
    `tls`: also STARTTLS and IMAPS on a second port (self-signed certificate)."""
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    compress = _imap_zlib()
    plugins = "protocol imap {\n  mail_plugins = $mail_plugins imap_zlib\n}" if compress else ""
    with _tmpdir("mimap") as tmp:
        nobody = 65534
        user_dir = tmp / "mail" / IMAP_USER
        for folder in (user_dir, user_dir / ".Sent"):
            for sub in ("cur", "new", "tmp"):
                (folder / sub).mkdir(parents=True)
        (user_dir / "subscriptions").write_text("Sent\n")
        for n, body in enumerate(IMAP_MESSAGES):
            (user_dir / "cur" / f"{1700000000 + n}.M{n}P1.test:2,").write_bytes(
                body.replace(b"\r\n", b"\n")
            )
        for root, dirs, files in os.walk(tmp / "mail"):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), nobody, nobody)
        os.chown(tmp / "mail", nobody, nobody)
        (tmp / "passwd").write_text(
            f"{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}:{nobody}:{nobody}::{tmp}/home::\n"
        )
        conf = tmp / "dovecot.conf"
        ssl = "ssl = no"
        if tls:
            tls_files(tmp)
            ssl = f"ssl = yes\nssl_cert = <{tmp}/cert.pem\nssl_key = <{tmp}/key.pem"
        wanted = port
        for attempt in range(3):
            port = wanted if wanted is not None and attempt == 0 else free_port()
            tls_port = free_port() if tls else 0
            imaps = (
                f"    address = 127.0.0.1\n    port = {tls_port}\n    ssl = yes"
                if tls
                else ("    port = 0")
            )
            conf.write_text(
                _DOVECOT_IMAP_CONF.format(tmp=tmp, port=port, plugins=plugins, ssl=ssl, imaps=imaps)
            )
            with open(tmp / "stderr.log", "ab") as stderr:
                proc = subprocess.Popen(
                    [dovecot, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=stderr
                )
            try:
                wait_for_port(port, proc)
                if tls_port:
                    wait_for_port(tls_port, proc)
            except RuntimeError as error:
                _stop(proc)
                if attempt == 2:
                    log = tmp / "dovecot.log"
                    text = log.read_text(errors="replace") if log.exists() else ""
                    raise RuntimeError(f"dovecot: {error}\n{text}") from None
                continue
            break
        try:
            yield ImapServer(
                "127.0.0.1",
                port,
                IMAP_USER,
                IMAP_PASSWORD,
                user_dir,
                tmp / "dovecot.log",
                compress,
                tls_port,
            )
        finally:
            _stop(proc)


# --------------------------------------------------------------------------- DNS (dnsmasq)


@dataclass(slots=True)
class DnsServer:
    host: str
    port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@contextmanager
def running_dnsmasq() -> Iterator[DnsServer]:
    """dnsmasq on 127.0.0.1 serving a test zone under .test.

    mail.test: MX 10 mx1.mail.test (127.0.0.2, where nothing listens) and
    MX 20 mx2.mail.test (127.0.0.1 and ::1); nomx.test: A 127.0.0.1 and no MX (implicit MX);
    nullmx.test: the RFC 7505 null MX; anything else below .test: NXDOMAIN.
    """
    dnsmasq = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    zone = [
        "--local=/test/",
        f"--mx-host={DNS_DOMAIN},mx1.{DNS_DOMAIN},10",
        f"--mx-host={DNS_DOMAIN},mx2.{DNS_DOMAIN},20",
        f"--host-record=mx1.{DNS_DOMAIN},127.0.0.2",
        f"--host-record=mx2.{DNS_DOMAIN},127.0.0.1,::1",
        f"--host-record={DNS_NO_MX},127.0.0.1",
        f"--mx-host={DNS_NULL_MX},.,0",
        f"--host-record={DNS_NULL_MX},127.0.0.1",
    ]
    for attempt in range(3):
        port = free_udp_port()
        proc = subprocess.Popen(
            [
                dnsmasq,
                "--keep-in-foreground",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file=",
                "--user=root",
                f"--port={port}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                *zone,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port, proc)
        except RuntimeError:
            _stop(proc)
            if attempt == 2:
                raise
            continue
        break
    try:
        yield DnsServer("127.0.0.1", port)
    finally:
        _stop(proc)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    with running_smtp() as server:
        yield server


@pytest.fixture
def pop3_server() -> Iterator[Pop3Server]:
    with running_dovecot() as server:
        yield server


@pytest.fixture
def imap_server() -> Iterator[ImapServer]:
    with running_dovecot_imap() as server:
        yield server


@pytest.fixture(scope="module")
def dns_server() -> Iterator[DnsServer]:
    with running_dnsmasq() as server:
        yield server


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()
