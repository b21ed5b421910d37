"""Alembic migrations of sundial's schema; ``scheduler.store.migrate`` runs them."""
