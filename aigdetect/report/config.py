"""Settings of the HTML report that the command line shows, kept apart from the rendering code."""

DEFAULT_THUMBNAILS = 1000
"""Previews embedded in a scan report by default: the 1,000 most suspicious files (about 7 MB of page)."""
