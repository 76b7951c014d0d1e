"""Analysis of finished sessions: envelope vs headers, findings. Never prints."""
