"""Prometheus metrics: the per-request families, their labels and cap, the process values read at scrape time,
and the text exposition."""
