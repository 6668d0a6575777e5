"""The allocator thresholds of training processes (entropic_ae._alloc)."""

import subprocess
import sys


def test_tuning_the_allocator_succeeds_on_glibc_and_is_done_once():
    code = ("import platform; from entropic_ae._alloc import tune_allocator; "
            "first = tune_allocator(); print(first, tune_allocator() is first, "
            "platform.libc_ver()[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    if out[2] == "glibc":
        assert out[:2] == ["True", "True"]
    else:
        assert out[1] == "True"
