"""The CBC store: SQLAlchemy models, engine and sessions, migrations driver, read queries and bulk writes.

May import ``monitor`` (column names, units, analysis); never ``services``, ``ui``, ``app_pages`` or ``cli``.
Data functions take a session and never open, commit or close it: the caller (a service) owns it.
"""
