#!/usr/bin/env bash
# First command of the README: set up the environment, then run the embedded
# synthetic recipe (egs/mini) end to end. Extra arguments go to egs/mini/run.sh.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/tools/install.sh"
cd "$root/egs/mini"
exec ./run.sh "$@"
