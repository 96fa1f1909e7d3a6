"""The CBC store: SQLAlchemy models, engine and sessions, read queries, and the write side (ingest)."""
