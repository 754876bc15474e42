"""Shared pytest setup: each app's tests/conftest.py holds its own fixtures."""
