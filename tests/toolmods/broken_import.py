"""A tool module that fails to import."""

raise RuntimeError("broken on purpose\n    second line of the message")
