"""Row stores for any record kind, each given its `RowSchema`: SQLite, JSONL, PostgreSQL and `none`, chosen by
URL; the batching writer, its spool, and the thread PostgreSQL runs on."""
