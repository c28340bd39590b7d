"""Accounts: registration, login sessions, API keys, admin rights."""
