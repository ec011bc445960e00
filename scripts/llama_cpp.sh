#!/usr/bin/env bash
# A real llama.cpp for tests/test_llama_cpp.py (README, "llama.cpp"): its source tree (the GGUF converters
# `codedouble export --format gguf --llama-cpp TREE` runs) and its own `llama-server`, built here once into
# DIR (default .codedouble/llama.cpp): DIR/src (the converters) and DIR/bin/llama-server.
#
# The source is the vendor/llama.cpp folder of llama-cpp-python's source distribution, pinned by hash in
# scripts/llama_cpp.txt. Only the server is built (measured: 3 min 21 s with ninja on 2 cores), with no web
# UI: llama.cpp's build would otherwise download a prebuilt one. Where cmake or a C++ compiler is missing the
# build is skipped with a note and the test skips saying so; under CI (CI=true) that is an error, because CI
# must run the test against the real engine.
set -euo pipefail
DIR=${1:-.codedouble/llama.cpp}
PY=${PY:-.venv/bin/python}
HERE=$(cd "$(dirname "$0")" && pwd)
PIN="$HERE/llama_cpp.txt"
STAMP="$DIR/built-from"

if [[ -x "$DIR/bin/llama-server" && -f "$STAMP" ]] && cmp -s "$PIN" "$STAMP"; then
    exit 0  # built from this very pin
fi

missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v "${CXX:-c++}" >/dev/null || missing+=("a C++ compiler (${CXX:-c++})")
if ((${#missing[@]})); then
    echo "llama-cpp: no ${missing[*]}: llama.cpp's server is not built and tests/test_llama_cpp.py will skip" >&2
    [[ "${CI:-}" == "true" ]] && exit 1
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/codedouble-llama.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$PY" -m pip download --quiet --no-deps --no-binary :all: --require-hashes -r "$PIN" -d "$work/sdist"
tar -xzf "$work"/sdist/llama_cpp_python-*.tar.gz -C "$work"
src=$(echo "$work"/llama_cpp_python-*/vendor/llama.cpp)

generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
started=$SECONDS
cmake -S "$src" -B "$work/build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF >"$work/configure.log" 2>&1 \
    || { tail -20 "$work/configure.log" >&2; exit 1; }
cmake --build "$work/build" --target llama-server --parallel "$(nproc 2>/dev/null || echo 2)" >"$work/build.log" 2>&1 \
    || { tail -40 "$work/build.log" >&2; exit 1; }
echo "llama-cpp: llama-server built in $((SECONDS - started)) s" >&2

# Replace DIR whole, so that a build cut short never leaves a server beside another version's source.
rm -rf "$DIR.new"
mkdir -p "$DIR.new/bin" "$DIR.new/src"
# Of the 176 MB tree, the converters need only themselves, conversion/ and gguf-py/ (the Llama path).
cp -r "$src"/{convert_hf_to_gguf.py,convert_lora_to_gguf.py,conversion,gguf-py,LICENSE} "$DIR.new/src/"
cp "$work/build/bin/llama-server" "$DIR.new/bin/"
cp "$PIN" "$DIR.new/built-from"
rm -rf "$DIR"
mv "$DIR.new" "$DIR"
