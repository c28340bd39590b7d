"""Schemathesis hooks for the API fuzzing test (loaded through SCHEMATHESIS_HOOKS).

Chat completions are fuzzed with a small ``max_tokens`` (at most 4): every other
field stays as generated, and the test's time goes to many requests rather than
to long replies on a CPU.
"""

from __future__ import annotations

import schemathesis

MAX_TOKENS = 4


@schemathesis.hook
def before_call(ctx, case, **kwargs):  # noqa: ANN001, ANN003 - schemathesis' hook signature
    if case.path == "/v1/chat/completions" and isinstance(case.body, dict):
        for field in ("max_tokens", "max_completion_tokens"):
            value = case.body.get(field)
            if not isinstance(value, int) or isinstance(value, bool) or value > MAX_TOKENS:
                case.body[field] = MAX_TOKENS
