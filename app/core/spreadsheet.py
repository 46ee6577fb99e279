"""CSV cells a spreadsheet (Excel, WPS) shows as text and never runs: the one rule for every export."""

# What makes Excel or WPS read a cell as a formula (or a DDE call): =, +, -, @, and a tab or CR before them.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """Return a value as a CSV cell: text starting like a formula gets a leading quote; None is empty;
    numbers and booleans are left as they are (a negative number is a number, not a formula)."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return "" if value is None else value
