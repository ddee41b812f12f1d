#!/usr/bin/env bash
# Installs the Python tools the contract tests use (schemathesis,
# openapi-spec-validator, openapi-python-client; pinned with everything they
# need in scripts/python-requirements.txt) into a virtualenv in the cache,
# one per content of that file and Python version, so a second run installs
# nothing. Packages come from PyPI.
#
# Progress goes to stderr; stdout is one `export` line for the test run:
#   eval "$(scripts/python-tools.sh)"
# It fails, saying why, when the tools cannot be installed: the contract
# tests need them and never skip.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache=${DBFLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dbfleet}
requirements=$repo/scripts/python-requirements.txt
python=${DBFLEET_PYTHON:-python3}

log() { printf '[python-tools] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# schemathesis and openapi-python-client need Python 3.11 or newer.
command -v "$python" >/dev/null ||
    die "$python not found: the contract tests need Python 3.11 or newer (set DBFLEET_PYTHON to another interpreter)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$("$python" --version 2>&1) is too old: the contract tests need Python 3.11 or newer (set DBFLEET_PYTHON)"
if ! "$python" -c 'import venv, ensurepip' 2>/dev/null; then
    log "installing python3-venv from Debian packages"
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2 ||
        die "$python cannot make virtualenvs and python3-venv could not be installed"
fi

version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
stamp=$({ cat "$requirements"; echo "$version"; } | sha256sum | cut -c1-12)
venv=$cache/python-tools/py$version-$stamp
mkdir -p "$cache/python-tools"
(
    flock 9
    if [ -f "$venv/.installed" ]; then
        log "schemathesis, openapi-spec-validator, openapi-python-client: cached in $venv"
        exit 0
    fi
    log "installing the pinned Python tools into $venv (first run only; about a minute)"
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2 || die "$python -m venv $venv failed"
    # The virtualenv cannot move (its scripts name it), so it is built in
    # place and marked complete only at the end.
    if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --requirement "$requirements" >&2; then
        rm -rf "$venv"
        die "pip could not install $requirements from PyPI (see above)"
    fi
    "$venv/bin/python" -m pip check >&2 || { rm -rf "$venv"; die "the pinned requirements are inconsistent"; }
    for tool in st openapi-spec-validator openapi-python-client; do
        [ -x "$venv/bin/$tool" ] || { rm -rf "$venv"; die "$tool is missing from $venv"; }
    done
    touch "$venv/.installed"
    log "installed in $venv"
) 9>"$cache/python-tools/.lock"

echo "export DBFLEET_PYTHON_TOOLS='$venv'"
