"""L2-L4 decoding: link layers, IPv4/IPv6 (with defragmentation), TCP."""
