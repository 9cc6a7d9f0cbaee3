"""The writers' half of the outbox wake-up, under its former name: see app.db.wakeup.

Kept only so that imports of `app.db.bell` (the API's composition, app/services)
keep working; new code imports app.db.wakeup.
"""

from __future__ import annotations

from app.db.wakeup import CHANNEL, OutboxBell

__all__ = ["CHANNEL", "OutboxBell"]
