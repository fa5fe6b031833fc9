"""Where a task's outcome goes: replies, retry tiers, dead letters, cancellation."""
