"""Platform administration: accounts and the global audit log (no clinical content)."""
