"""Alembic migrations for the sealchat database."""
