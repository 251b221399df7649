"""Collecting data, one job a module: what a fetch asks for and its offline check (request), opening the
exchange clients (clients), the symbol gate that holds writes until symbols are settled (gate), where rows are
written (sink), what a fetch reports (report); what history to fetch (plan), how to page through it (paging),
what every history fetch shares (history), per data type with plan, fetch, table and gap steps apart
(open_interest, funding), and across exchanges with failures kept apart (run)."""
