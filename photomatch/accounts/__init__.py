"""Photographer accounts and their API keys."""
