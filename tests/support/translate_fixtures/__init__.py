"""Fixtures for the translation tests: realistic request bodies of each caller format, answers and
streams of each destination format, byte-splitting helpers, and the request-schema checks."""
