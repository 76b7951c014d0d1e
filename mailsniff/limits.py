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
    "MAX_TOMBSTONES",
    "MAX_GAPS_RECORDED",
    "MAX_CONFLICTS_RECORDED",
    "MAX_PRE_HANDSHAKE_BYTES",
    "MAX_PRE_HANDSHAKE_SEGMENTS",
    "MAX_VLAN_TAGS",
    "MAX_WORDS",
    "MAX_PARTS",
    "MAX_HEADERS",
    "MAX_DEFECTS",
    "MAX_DEPTH",
    "MAX_ADDRESSES",
    "MAX_ANOMALIES",
    "MAX_AWAITED",
    "MAX_CAPABILITIES",
    "MAX_PENDING_COMMANDS",
    "MAX_RECORD_BYTES",
    "MAX_PACKET_BYTES",
    "MAX_ANOMALY_FINDINGS",
    "PROBE_PAYLOADS",
    "HELD_BYTES",
    "MAX_HELD_FLOWS",
    "MAX_REPLY_LINES",
    "QUEUE_FRAMES",
    "QUEUE_BYTES",
    "MAX_FLOWS",
    "MAX_HALF_OPEN",
    "PARK_SESSIONS_AT",
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
#: Ended 4-tuples remembered so their trailing packets are ignored (oldest forgotten first).
MAX_TOMBSTONES = 4096
#: Gaps kept in `Flow.gaps`; further gaps are still emitted as events and counted.
MAX_GAPS_RECORDED = 1000
#: Overlap conflicts kept in `Flow.conflicts`; further ones are still counted.
MAX_CONFLICTS_RECORDED = 100
#: What a direction whose SYN-ACK was not seen may hold before its first byte is taken as given.
MAX_PRE_HANDSHAKE_BYTES = 64 * 1024
MAX_PRE_HANDSHAKE_SEGMENTS = 16
#: Tags unwrapped at most (a stack deeper than this is not real traffic).
MAX_VLAN_TAGS = 8
#: Decoded characters from one header kept at most (a header is already bounded by the message).
MAX_WORDS = 10_000
#: MIME parts walked at most per message; more are counted as a defect, not parsed.
MAX_PARTS = 1000
#: Header fields kept per message (display and lookup); the rest are dropped with a defect.
MAX_HEADERS = 5000
#: Defect strings kept per message.
MAX_DEFECTS = 100
#: Multipart nesting followed level by level; the parts below are listed without their structure.
MAX_DEPTH = 64
#: Addresses taken from one header at most; the rest are dropped with a defect.
MAX_ADDRESSES = 1000
#: Anomaly strings kept per session; later ones are counted in one last entry.
MAX_ANOMALIES = 1000
#: Commands remembered while their reply is awaited (a client never answered stays bounded).
MAX_AWAITED = 4096
#: CAPA lines kept (RFC 2449 lists a dozen; a hostile server could send millions).
MAX_CAPABILITIES = 256
#: Commands sent but not yet answered that a protocol parser remembers. A one-sided capture (no
#: server direction) would otherwise queue every command of the session; past this bound the
#: oldest is forgotten and an Anomaly says so.
MAX_PENDING_COMMANDS = 4096
#: No pcapng block is believed to be longer than this: a longer one is corruption (reading one
#: costs about three times its size in memory, so the bound is what one record may allocate).
MAX_RECORD_BYTES = 16 * 1024 * 1024
#: No packet (pcap record, pcapng packet block) is longer than this: four times libpcap's
#: MAXIMUM_SNAPLEN, and far above the 64 KiB of an IP packet (even GRO/TSO-merged).
MAX_PACKET_BYTES = 1024 * 1024
#: Anomalies of one session turned into findings at most (the rest are counted in one).
MAX_ANOMALY_FINDINGS = 20
#: Payload segments of a flow on an unknown port searched for a greeting before giving up.
PROBE_PAYLOADS = 8
#: Bytes of a flow kept after a `220` greeting that does not name SMTP, while its client's
#: first line is awaited; and how many such flows are kept at once (the oldest is dropped).
HELD_BYTES = 4096
MAX_HELD_FLOWS = 1024
#: Lines of one reply read at most (a hostile server cannot keep us reading forever).
MAX_REPLY_LINES = 1000
#: Frames and bytes the hand-over queue holds before it drops (and counts) new frames.
QUEUE_FRAMES = 100_000
QUEUE_BYTES = 128 * 1024 * 1024
#: TCP connections tracked at once (about 1 KB each while half-open, a few KB with a session);
#: past it the idlest are evicted, those that never carried data first, and those that did are
#: reported as sessions with an anomaly (a port scan or SYN flood stays in bounded memory).
MAX_FLOWS = 100_000
#: Of those, connections that have seen nothing but their opening SYN (a port scan, a SYN flood;
#: a real connection leaves this state within a round trip): past it the oldest are forgotten
#: (counted as evicted without data), so that a scan never crowds out connections with data. A
#: SYN-ACK that comes after its SYN was forgotten starts the connection again.
MAX_HALF_OPEN = 16_384
#: Open sessions (record, handler, parser: a few KB each) kept in memory at most between two
#: expiry checks; past it the idlest are parked on disk until their next packet (mailsniff.park).
PARK_SESSIONS_AT = 4096
