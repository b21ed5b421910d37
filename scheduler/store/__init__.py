"""The store: the SQL schema and engine, migrations, and the repositories the API writes through."""
