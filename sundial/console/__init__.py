"""The client side of the ``sundial`` command: schedules, runs, apply, export, import-beat."""
