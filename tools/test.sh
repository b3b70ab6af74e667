#!/usr/bin/env bash
# Second command of the README: set up the environment, then run the whole test suite.
# Extra arguments go to pytest (e.g. -k datadir, -x).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/tools/install.sh"
cd "$root"
exec "$root/tools/venv/bin/python" -m pytest test "$@"
