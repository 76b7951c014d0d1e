"""Message parsing: MIME structure, RFC 2047 words, address lists."""
