"""mailsniff: packet-level analyzer for SMTP and POP3 dialogues."""

from mailsniff import _compiled

__version__ = "0.1.0"
__all__ = ["__version__"]

# Compiled extensions or the pure-Python modules, decided once for the whole process.
_compiled.select()
