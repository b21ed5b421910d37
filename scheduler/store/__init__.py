"""The store: the SQL schema and engine, migrations, and the repositories the API writes through.

The repositories are plain SQLAlchemy Core over a caller's connection (the caller owns the
transaction), with ``now`` passed in. Failures are :mod:`scheduler.errors` exceptions;
nothing here knows HTTP.
"""
