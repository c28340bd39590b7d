"""Worker progress reaches the database at a bounded rate, and the final report always does."""

from app.progress import ThrottledProgress


def test_reports_are_throttled_but_the_last_one_is_never_dropped():
    seen = []
    progress = ThrottledProgress(lambda stage, fraction: seen.append((stage, fraction)), interval=60)
    progress("training", 0.12345)
    progress("training", 0.5)  # within the interval: dropped
    progress("done", 1.0)
    assert seen == [("training", 0.123), ("done", 1.0)]
