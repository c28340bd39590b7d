"""Memory: the facts users teach, their learning status, and consolidation into adapters."""
