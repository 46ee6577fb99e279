"""Small helpers for model definitions shared by several domains."""


def in_list(column: str, values: tuple[str, ...]) -> str:
    """SQL text for a CHECK constraint: ``column IN ('a', 'b', ...)``."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"
