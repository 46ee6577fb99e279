"""Metrics defined once, computed in SQL; close-out follow-ups, peer reviews and dashboards."""
