"""The test suite: a package, so that its shared helpers import by their full name (``tests.support.…``).

pytest puts the repository root on ``sys.path`` for it, which also makes ``testkit`` (helpers shared with
``bench/``) importable.
"""
