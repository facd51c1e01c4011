"""Building blocks shared by the tests (``tests/``) and the benchmarks (``bench/``); not part of the installed package.

* ``testkit.tiny_models``: tiny CLIP models with random weights, written as real files (no weights to download);
* ``testkit.raster_reference``: a slow supersampled reference renderer for cubic Bézier strokes;
* ``testkit.ray_cluster``: a one-node CPU-only Ray cluster on this machine, ended by its process id.

Nothing here imports pytest, ``tests`` or ``bench``: both sides import this package, never each other
(``tests/test_dependencies.py`` checks it). Import it with the repository root on ``sys.path`` (pytest and
``python -m bench.…`` run from the root do that).
"""

STEADY_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""Environment for child processes (a server, a Ray head): one torch thread, so tiny jobs stay fast on busy cores."""
