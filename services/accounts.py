"""Who is asking: the viewer every service call is made for, and the accounts behind it."""

from __future__ import annotations

from db.accounts import SYSTEM, AccountError, Viewer

__all__ = ["SYSTEM", "AccountError", "Viewer"]
