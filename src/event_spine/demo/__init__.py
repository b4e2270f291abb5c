"""The main job: a sample engine, the local broker, sink workers and SQLite."""
