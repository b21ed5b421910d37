"""Alembic migrations of sundial's schema; ``scheduler.migrate`` runs them."""
