#!/bin/sh
# Installs the benchmark's peers, each in its own virtualenv under bench/.venvs
# (gitignored), so that none of them changes the project's .venv:
#   fastmcp     FastMCP (its proxy, with JWTVerifier)
#   mcp-proxy   sparfenyuk's mcp-proxy
#   pypy        aigw itself under Debian's pypy3, when that PyPy is new enough;
#               otherwise bench/.venvs/pypy.skip says why (the row is skipped).
# Idempotent: a venv with its stamp is left alone.  PYTHON picks the CPython.
set -eu
cd "$(dirname "$0")"
ROOT=$(cd .. && pwd)
V=.venvs
PY=${PYTHON:-python3}
FASTMCP_VERSION=4.2.3
MCP_PROXY_VERSION=0.13.0
mkdir -p "$V"

venv() {  # venv NAME INTERPRETER PIP-ARGS...
    name=$1; interp=$2; shift 2
    stamp="$V/$name/.bench-stamp"
    want="$*"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    rm -rf "${V:?}/$name"
    "$interp" -m venv "$V/$name"
    "$V/$name/bin/pip" install --quiet --disable-pip-version-check "$@"
    printf '%s' "$want" > "$stamp"
    echo "bench: installed $name ($*)"
}

venv fastmcp "$PY" "fastmcp==$FASTMCP_VERSION"
venv mcp-proxy "$PY" "mcp-proxy==$MCP_PROXY_VERSION"

# aigw under PyPy: needs a PyPy implementing Python >= 3.11 (setup.cfg).
rm -f "$V/pypy.skip"
if ! command -v pypy3 >/dev/null 2>&1; then
    echo "no pypy3 (Debian: apt-get install pypy3 pypy3-venv)" > "$V/pypy.skip"
elif ! pypy3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Debian's pypy3 implements Python $(pypy3 -c 'import sys; print("%d.%d" % sys.version_info[:2])'); aigw needs >= 3.11" > "$V/pypy.skip"
elif ! (venv pypy pypy3 -e "$ROOT" --config-settings editable_mode=compat) > "$V/pypy-install.log" 2>&1; then
    echo "aigw's dependencies did not install under pypy3 (see bench/.venvs/pypy-install.log)" > "$V/pypy.skip"
    rm -rf "${V:?}/pypy"
fi
if [ -f "$V/pypy.skip" ]; then
    echo "bench: aigw-pypy row will be skipped: $(cat "$V/pypy.skip")"
fi
