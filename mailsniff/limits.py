"""Every bound mailsniff applies, in one place (all sizes in bytes, times in nanoseconds)."""

__all__ = [
    "MAX_LINE",
    "MAX_MESSAGE",
    "MAX_FLOW_BUFFER",
    "MAX_OUT_OF_ORDER",
    "MAX_TRANSCRIPT_LINES",
    "MAX_TRANSCRIPT_DATA_LINES",
    "IDLE_TIMEOUT_NS",
    "FRAGMENT_TIMEOUT_NS",
    "MAX_FRAGMENT_BYTES",
    "MAX_PENDING_FRAGMENT_SETS",
    "MAX_UNDECIDED_FLOWS",
    "MAX_FLOWS",
]

#: Longest command or reply line kept; longer lines are cut and flagged (RFC 5321 4.5.3.1.4
#: allows 512 for commands, 1000 for text lines; real traffic breaks both).
MAX_LINE = 64 * 1024
#: Bytes of one message kept for MIME parsing; the rest is still hashed and counted.
MAX_MESSAGE = 16 * 1024 * 1024
#: Bytes a TCP direction may hold buffered waiting for missing data before a gap is declared.
MAX_FLOW_BUFFER = 4 * 1024 * 1024
#: Out-of-order segments one direction may hold at once.
MAX_OUT_OF_ORDER = 1024
#: Transcript lines kept per session (commands, replies, message lines).
MAX_TRANSCRIPT_LINES = 20000
#: Message lines per DATA/RETR shown in a transcript before they are summarised.
MAX_TRANSCRIPT_DATA_LINES = 400
#: A connection with no packet for this long is closed as idle (Zeek's tcp_inactivity_timeout
#: is 5 min; mail servers time out idle clients after 5-10 min, RFC 5321 4.5.3.2).
IDLE_TIMEOUT_NS = 600 * 1_000_000_000
#: Incomplete IPv4 fragment sets are dropped (and counted) after this long (RFC 791: 15 s+).
FRAGMENT_TIMEOUT_NS = 30 * 1_000_000_000
#: Largest datagram rebuilt from fragments.
MAX_FRAGMENT_BYTES = 65535
#: Fragment sets held at once.
MAX_PENDING_FRAGMENT_SETS = 4096
#: Flows on non-mail ports watched for an SMTP/POP3 greeting at once.
MAX_UNDECIDED_FLOWS = 65536
#: TCP connections tracked at once (about 1 KB each while half-open, a few KB with a session);
#: past it the idlest are evicted, those that never carried data first, and those that did are
#: reported as sessions with an anomaly (a port scan or SYN flood stays in bounded memory).
MAX_FLOWS = 100_000
