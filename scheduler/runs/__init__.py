"""Runs: outcomes from task events, housekeeping, run history, timelines, deadlines, alerts."""
