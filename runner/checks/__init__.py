"""Verification: independent checks decide whether the work is done, never the model."""
