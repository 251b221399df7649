"""Pure parsers: a ccxt unified structure (or raw payload) in, a validated record out.

No clock, network or disk: receipt times are passed in. Units are fixed here (see docs/catalog.md).
"""
