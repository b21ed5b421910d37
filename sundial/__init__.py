"""The ``sundial`` command: the one place that wires scheduler, api and jobs together."""
