"""Helpers the test modules share (no tests and no fixtures here: the fixtures are in ``tests/conftest.py``).

* ``server_process``: the real ``clipasso-server`` as a child process, and submitting and waiting for jobs;
* ``job_views``: a job's files over HTTP, its live preview, the layers of its SVGs;
* ``fake_sketch_server``: a stand-in server, only for what the real one cannot do on demand;
* ``extension_runs``: the Inkscape extension run as Inkscape runs it, its documents and inserted layers;
* ``pictures``: small drawings and path data that several test modules sketch or refine;
* ``augment_reference``: the paper's augmentations as torchvision implements them.

What the benchmarks need as well (tiny models, the reference rasterizer, a local Ray cluster) is in ``testkit/``.
"""
