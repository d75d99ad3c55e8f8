"""The benchmark command: our middleware and ``trace()`` against what users would pick instead.

``python -m benchmarks`` (or ``make bench``) measures every variant in one run,
interleaved round by round, and writes ``docs/benchmarks.md``. Timings on a
shared machine drift, so results are medians of per-round figures and the
targets are ratios between variants measured in the same rounds.
"""
