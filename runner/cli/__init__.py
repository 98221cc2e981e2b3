"""The `loop` command line: commands, live display, report."""
