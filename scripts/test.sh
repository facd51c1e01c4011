#!/usr/bin/env bash
# The project's test command: install the package with its test extras, then run the default test set.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q -e '.[test]'
# inkex declares PyGObject, which needs cairo headers to build; its pure-Python needs are in the test extra.
python3 -m pip install -q --no-deps 'inkex==1.4.1'
# One pytest worker per CPU core; a worker that runs out of tests takes some of another's (worksteal).
python3 -m pytest -n auto --dist worksteal "$@"
