"""event-spine's benchmark suite: run with ``spine bench [NAME]`` (see README.md here).

Benchmarks never run as timed tests; ``tests/benchmarks/test_bench_smoke.py`` runs
each one at tiny sizes so the code cannot rot.
"""
