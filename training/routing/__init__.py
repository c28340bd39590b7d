"""Routing a chat turn: is it about the user's facts, and which fact group answers."""
