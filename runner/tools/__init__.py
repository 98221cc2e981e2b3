"""The agent's tools: what it may call, confined to the workdir, failing as messages."""
