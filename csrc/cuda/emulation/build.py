#!/usr/bin/env python3
"""Builds a HOST EMULATION of fusedrnn._cuda, to test the CUDA backend's logic without a GPU.

What is emulated, and how:

* the kernels (csrc/cuda/*.cu) are compiled as C++ by the host compiler: each
  ``kernel<<<grid, block, 0, stream>>>(args);`` is rewritten to
  ``emu::launch(grid, block, [&] { kernel(args); });``, which runs every thread of the grid in
  turn as a block of one thread (so grid-stride loops and block reductions keep their meaning);
  ``include/cuda_runtime.h`` supplies blockIdx/threadIdx/... and the device qualifiers;
* the CUDA runtime (``include/cuda_runtime_api.h``): one device, host memory as device memory,
  every async call done at once;
* cuBLAS (``include/cublas_v2.h``): column-major reference loops with cuBLAS's argument checks;
* CuPy (``cupy/__init__.py``): NumPy-backed arrays exposing ``__cuda_array_interface__``.

The orchestration (recurrent.cpp), the cuBLAS wrapper (blas.cpp), the bindings (module.cpp), the
kernels' indexing and the whole Python path are the real ones. Not covered: real device
execution, concurrency, real cuBLAS, device math functions (the host's are used).

Usage: ``python csrc/cuda/emulation/build.py OUT_DIR`` makes ``OUT_DIR/fusedrnn``: this
checkout's python/fusedrnn with its ``_C`` (built in place, else the installed one) and the
emulated ``_cuda``; then run, for example::

    PYTHONPATH=OUT_DIR:csrc/cuda/emulation python -m pytest -q tests/test_cuda_recurrent.py -k cupy
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
CUDA_SRC = HERE.parent             # csrc/cuda
CSRC = CUDA_SRC.parent             # csrc


def _split_top_level(text: str) -> list:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "(<[":
            depth += 1
        elif ch in ")>]":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


def convert_launches(src: str) -> str:
    """Rewrites every ``name<<<grid, block, 0, stream>>>(args);`` as an emu::launch call."""
    out, pos, count = [], 0, 0
    while True:
        k = src.find("<<<", pos)
        if k < 0:
            break
        if src.startswith(">>>", k + 3):  # "name<<<>>>" inside a message string
            out.append(src[pos:k + 6])
            pos = k + 6
            continue
        line_start = src.rfind("\n", 0, k) + 1
        head = src[line_start:k]
        name = head.strip()
        indent = head[:len(head) - len(head.lstrip())]
        end = src.index(">>>", k)
        config = _split_top_level(src[k + 3:end])
        a0 = end + 3
        if src[a0] != "(":
            raise ValueError(f"unexpected launch syntax near: {src[line_start:a0 + 20]!r}")
        depth, j = 0, a0
        while True:
            if src[j] == "(":
                depth += 1
            elif src[j] == ")":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        if src[j + 1] != ";":
            raise ValueError(f"unexpected launch syntax near: {src[line_start:j + 2]!r}")
        out.append(src[pos:line_start])
        out.append(f"{indent}emu::launch({config[0]}, {config[1]}, [&] {{ {name}({src[a0 + 1:j]}); }});")
        pos = j + 2
        count += 1
    out.append(src[pos:])
    if count == 0:
        raise ValueError("no kernel launch found")
    return "".join(out)


def build(out_dir: Path, cxx: str = "g++", extra_flags: tuple = ()) -> Path:
    """Builds OUT_DIR/fusedrnn with the emulated _cuda; returns the package folder."""
    import fusedrnn
    import pybind11

    work = out_dir / "emulation_build"
    src_dir = work / "src" / "cuda"
    if work.exists():
        shutil.rmtree(work)
    src_dir.mkdir(parents=True)
    for f in list(CUDA_SRC.glob("*.h")) + list(CUDA_SRC.glob("*.cuh")) + list(CUDA_SRC.glob("*.cpp")):
        shutil.copy(f, src_dir / f.name)
    for f in CUDA_SRC.glob("*.cu"):
        (src_dir / (f.stem + ".cpp")).write_text(convert_launches(f.read_text()))

    includes = [f"-I{HERE / 'include'}", f"-I{work / 'src'}", f"-I{CSRC / 'include'}",
                f"-I{sysconfig.get_paths()['include']}", f"-I{pybind11.get_include()}"]
    flags = ["-std=c++17", "-O1", "-fPIC", "-fvisibility=hidden", *extra_flags]
    sources = sorted(src_dir.glob("*.cpp"))
    objects = [work / (s.stem + ".o") for s in sources]

    def compile_one(pair):
        s, o = pair
        res = subprocess.run([cxx, *flags, *includes, "-c", str(s), "-o", str(o)], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"compiling {s.name} failed:\n{res.stderr}")

    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        list(pool.map(compile_one, zip(sources, objects)))

    # The Python sources of this checkout, with the CPU module _C of this checkout when it was
    # built in place, else the importable (installed) one.
    package = out_dir / "fusedrnn"
    if package.exists():
        shutil.rmtree(package)
    sources_dir = CSRC.parent / "python" / "fusedrnn"
    shutil.copytree(sources_dir, package, ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"))
    ext = sysconfig.get_config_var("EXT_SUFFIX")
    cpu_module = sources_dir / ("_C" + ext)
    if not cpu_module.exists():
        cpu_module = Path(fusedrnn.__file__).resolve().parent / ("_C" + ext)
    shutil.copy(cpu_module, package / cpu_module.name)
    target = package / ("_cuda" + ext)
    res = subprocess.run([cxx, "-shared", *extra_flags, "-o", str(target), *map(str, objects)], capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise RuntimeError(f"linking failed:\n{res.stderr}")
    return package


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir", type=Path)
    p.add_argument("--cxx", default=os.environ.get("CXX", "g++"))
    p.add_argument("--sanitize", action="store_true", help="build with -fsanitize=address,undefined")
    args = p.parse_args()
    extra = ("-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g") if args.sanitize else ()
    print(build(args.out_dir, args.cxx, extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
