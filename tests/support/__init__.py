"""Test support: stand-in servers and helpers the tests share (not product code)."""
