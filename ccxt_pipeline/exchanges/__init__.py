"""Talking to exchanges through ccxt: clients built from settings, error translation and retries."""
