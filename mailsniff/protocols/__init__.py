"""Sans-IO mail protocol parsers: bytes in, typed events out, no I/O."""
