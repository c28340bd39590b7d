"""A user's memory: planning a run, learning facts into an adapter version, quizzes and the gate."""
