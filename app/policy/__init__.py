"""The shared self-edit policy: versions, ReST-EM rounds, the admin actions."""
