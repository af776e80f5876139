"""Metrics, benchmark suites, robustness sweeps and reports."""
