"""What each command runs: one function per command, taking one request object and reporting its
progress through ``aigdetect.progress`` events, so that the command line (and the service to come)
only parses, calls and renders.

This room sits above ``scan``, ``training`` and ``report`` because a job joins them (a scan that
also writes its HTML report).
"""
