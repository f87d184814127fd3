"""contextkit's benchmarks: one command (``python -m benchmarks`` or ``nox -s bench``) that measures contextkit next
to its peers and the raw clients on the same servers, in one process, and prints medians, spread and ratios.

Modules: :mod:`benchmarks.measure` (timing loops), :mod:`benchmarks.report` (rows, ratios, targets, tables and JSON),
:mod:`benchmarks.environment` (servers found, machine facts, cleanup), :mod:`benchmarks.cli` (the command) and one
module per comparison group under :mod:`benchmarks.groups`. See ``docs/benchmarks.md``.
"""
