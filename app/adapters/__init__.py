"""Adapter versions: immutable LoRA directories, the active pointer, promotion and rollback."""
