"""Firing: the fenced claim, its batched writes, and the outbox that publishes runs."""
