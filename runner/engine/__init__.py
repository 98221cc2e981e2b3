"""The agent loop and its policies: context, limits, stopping, sub-loops, hot reload."""
