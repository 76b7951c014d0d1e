"""Packet sources: pcap, pcapng (optionally gzip-compressed, or stdin) and live capture."""
