"""The API fixtures, for the client commands tested against a real app."""

from tests.api.conftest import client, clock, make_client, notifier

__all__ = ["client", "clock", "make_client", "notifier"]
