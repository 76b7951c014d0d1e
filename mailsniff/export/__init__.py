"""Evidence export and the sinks every runner passes a finished session through.

- `exporter`: each message as transferred, to .eml files, an mbox and a manifest (--extract,
  --mbox), with `eml` and `mbox` writing them.
- `zeek`: Zeek-style smtp.log / files.log (--zeek-logs).
- `redact`: secrets blanked before anything is written (--redact).
- `chain`: the one order in which a finished session is redacted, exported, counted and shown.

Nothing is imported here: a run that exports nothing (`read --json`) does not load the writers.
"""
