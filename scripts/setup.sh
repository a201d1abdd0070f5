#!/usr/bin/env bash
# One-time set-up on a fresh Debian bookworm machine of this kind (run as root):
# LLVM 22 from bookworm-security, a deb-src entry for the end-to-end tests'
# source packages, a virtual environment in .venv and clang-llm installed into it.
# Idempotent: re-running only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need_apt=()
for tool in clang-22 opt-22 llc-22 ld.lld-22; do command -v "$tool" >/dev/null || need_apt=(1); done
[ -f /usr/lib/llvm-22/lib/cmake/llvm/LLVMConfig.cmake ] || need_apt=(1)

if [ ! -f /etc/apt/sources.list.d/clang-llm-src.sources ]; then
  # Source packages (zlib, lua5.4, xz-utils ...) for the end-to-end builds.
  $SUDO tee /etc/apt/sources.list.d/clang-llm-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  need_apt=(1)
fi

if [ ${#need_apt[@]} -gt 0 ] || ! command -v make >/dev/null || ! command -v dpkg-source >/dev/null || ! command -v ccache >/dev/null \
   || ! command -v csmith >/dev/null || ! ls /usr/src/gcc-12/gcc-12*.tar.xz >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    clang-22 llvm-22 llvm-22-dev lld-22 libclang-rt-22-dev make cmake dpkg-dev xz-utils ccache ca-certificates \
    gcc-12-source csmith libcsmith-dev >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[test,data,train,bench]"
# Editable installs are not byte-compiled; the driver and policy start on every compile.
.venv/bin/python -m compileall -q python/clang_llm >/dev/null
echo "clang-llm installed in $(pwd)/.venv ($(.venv/bin/python -m clang_llm --version))"
