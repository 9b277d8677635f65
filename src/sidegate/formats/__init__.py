"""Wire knowledge of every API format, below everything else in sidegate: descriptors, usage readers,
stream observers and folds, SSE event parsing. Imports nothing of sidegate but `apis` and `errors`."""
