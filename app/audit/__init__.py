"""The append-only access log."""
