"""Graph tests use the fakes and fixtures of tests/conftest.py."""
