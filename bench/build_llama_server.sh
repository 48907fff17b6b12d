#!/usr/bin/env bash
# Build llama.cpp's own server (llama-server) from the llama.cpp that the installed
# llama-cpp-python vendors, for the server rows of bench/sampling.py.
#
#   bash bench/build_llama_server.sh            # -> bench/.llama-server/llama-server
#
# The source is the sdist of the installed llama-cpp-python version (pip download), so the
# server runs the same llama.cpp commit as semcal's llama.cpp backend. It is configured with
# llama.cpp's CMake defaults, as pip builds llama-cpp-python (no flag added here: the defaults
# include GGML_NATIVE=ON, i.e. the kernels are compiled for this CPU, as the Python package's
# are), with curl, tests and examples off and static libraries (one file to copy). About 10 minutes on 2 cores.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/.llama-server"
version="$(python -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$work"
tar xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
src="$work/llama_cpp_python-$version/vendor/llama.cpp"
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
    -DBUILD_SHARED_LIBS=OFF
cmake --build "$work/build" --target llama-server -j "$(nproc)"
mkdir -p "$out"
cp "$work/build/bin/llama-server" "$out/"
echo "built $out/llama-server (llama-cpp-python $version's llama.cpp)"
