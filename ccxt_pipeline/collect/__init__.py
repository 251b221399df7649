"""Collecting data: what to fetch (plan), how to page through it (paging), per data type (open_interest,
funding), and across exchanges with failures kept apart (run)."""
