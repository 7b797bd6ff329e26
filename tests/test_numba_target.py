"""The code Numba emits for the backend: 16 floats wide on AVX-512 CPUs (LLVM's own tuning
prefers 8 there), unless the user chose the target or Numba compiled before the import."""

import os
import subprocess
import sys

import pytest
from numba.core.codegen import get_host_cpu_features

AVX512 = "+avx512f" in get_host_cpu_features().split(",")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(code: str, **env: str) -> str:
    """The last line a fresh process that runs ``code`` prints."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CPU_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ | env,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def _features_after(code: str, **env: str) -> str:
    """numba.config.CPU_FEATURES after ``code``, in a fresh process."""
    return _run(code + "\nimport numba\nprint(numba.config.CPU_FEATURES)", **env)


def test_wide_vectors_preferred_on_avx512_only():
    got = _features_after("import codegen.numba_cpu")
    if AVX512:
        assert got == get_host_cpu_features() + ",-prefer-256-bit"
    else:
        assert got == "None"


@pytest.mark.skipif(not AVX512, reason="the preference is set only on AVX-512 CPUs")
def test_wide_vectors_reach_the_machine_code():
    code = ("import codegen.numba_cpu, numpy as np\n"
            "from codegen.numba_cpu import vecmath as V\n"
            "from numba import njit\n"
            "@njit(error_model='numpy')\n"
            "def f(x):\n"
            "    for i in range(x.size):\n"
            "        x[i] = V.exp32(x[i])\n"
            "f(np.ones(64, np.float32))\n"
            "print('zmm' in next(iter(f.inspect_asm().values())))")
    assert _run(code) == "True"


def test_a_user_choice_is_kept():
    assert _features_after("import codegen.numba_cpu", NUMBA_CPU_FEATURES="+sse2") == "+sse2"


def test_code_compiled_before_the_import_keeps_the_host_tuning():
    code = ("from numba import njit\n"
            "njit(lambda: 1)()\n"
            "import codegen.numba_cpu")
    assert _features_after(code) == "None"
