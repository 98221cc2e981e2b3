"""The spec format, and everything that turns a `.loop.yaml` file into a validated spec."""
