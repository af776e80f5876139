"""Readers of foreign file formats that must never run what a file contains (torch archives and
their pickles, read as data)."""
