"""The self-edit policy and ReST-EM, SEAL's outer loop."""
