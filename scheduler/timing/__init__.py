"""Timing: the clock, triggers and their fire times, fire policy, overlap and calendars (pure)."""
