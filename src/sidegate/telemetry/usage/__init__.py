"""The usage table: its row, its writer, and the `sidegate usage` reports."""
