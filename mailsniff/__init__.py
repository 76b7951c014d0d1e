"""mailsniff: packet-level analyzer for SMTP and POP3 dialogues."""

__version__ = "0.1.0"
__all__ = ["__version__"]
