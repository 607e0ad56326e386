#!/usr/bin/env bash
# Create .venv (if needed) and install the project with the given extras. Run by the others.
#
#   bash scripts/setup.sh [EXTRAS] [--force]      EXTRAS: dev (default), dev,spark, ...
#
# A re-run with nothing changed takes a second: .venv/.setup-stamp records a hash of
# pyproject.toml, the extras and the Python version, and pip runs only when one of them changed
# (--force runs it anyway). As root on Debian it also installs what is missing outside Python:
# python3-venv for Debian's python3, Java for the Spark tests (spark extra) and Chromium for the
# browser tests (dev extra); set PREDICTIVE_SCORING_SYSTEM_PACKAGES=0 to leave the system alone.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
EXTRAS=dev
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -*) echo "error: unknown option $arg (usage: bash scripts/setup.sh [EXTRAS] [--force])" >&2; exit 2 ;;
    *) EXTRAS="$arg" ;;
  esac
done
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "error: predictive_scoring needs Python 3.11 or newer; set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

# --- system packages: only the missing ones, only as root with apt-get -----------------------
has_extra() { case ",$EXTRAS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
missing=()
if has_extra spark && ! command -v java >/dev/null 2>&1; then missing+=(default-jre-headless); fi
if has_extra dev && ! command -v chromium >/dev/null 2>&1; then missing+=(chromium); fi
# Debian's python3 makes a venv only with python3-venv (ensurepip)
if [ ! -x .venv/bin/python ] && ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "${PREDICTIVE_SCORING_SYSTEM_PACKAGES:-1}" != 0 ] && [ "$(id -u)" = 0 ] \
    && command -v apt-get >/dev/null 2>&1; then
    echo "==> apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends \
      "${missing[@]}" >/dev/null; }; then
      echo "error: apt-get could not install ${missing[*]}; install it yourself, or set" \
        "PREDICTIVE_SCORING_SYSTEM_PACKAGES=0 to go on without it (its tests then skip)" >&2
      exit 1
    fi
  else
    echo "note: ${missing[*]} not installed; the tests that need it skip" \
      "(install it with: sudo apt-get install -y ${missing[*]})"
  fi
fi

# --- the virtualenv ----------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
# shellcheck disable=SC1091
. .venv/bin/activate
STAMP=.venv/.setup-stamp
want="$(sha256sum pyproject.toml | cut -d' ' -f1) extras=$EXTRAS $(python -VV | tr -s ' \n' ' ')"
if [ "$FORCE" = 0 ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] \
  && python -c 'import predictive_scoring' 2>/dev/null; then
  echo "==> predictive-scoring[$EXTRAS] is up to date (pyproject.toml unchanged; --force reinstalls)"
  exit 0
fi
echo "==> installing predictive-scoring[$EXTRAS] (first time: a few minutes)"
rm -f "$STAMP"
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[$EXTRAS]"
# the notebook test and `jupyter` need the venv's kernel registered under the name python3
python -m ipykernel install --sys-prefix --name python3 >/dev/null 2>&1 || true
echo "$want" > "$STAMP"
