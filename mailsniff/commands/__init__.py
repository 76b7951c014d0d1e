"""Commands: each wires a source, the pipeline and a chain of session sinks for one CLI verb."""
