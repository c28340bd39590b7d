"""SEAL's self-edits: candidates, parsing and the inner loop."""
