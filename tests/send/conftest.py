"""The real servers the send/mx/pop tests talk to (see tests/servers.py)."""

from tests.servers import dns_server, pop3_server, smtp_server

__all__ = ["dns_server", "pop3_server", "smtp_server"]
