"""The workaround for oneDNN's crashing AVX2 kernel: same numbers, and no crash under the AVX2 cap."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pathosynth.runtime import sidestep_strided_pointwise_convolutions


@pytest.mark.parametrize("dims, stride", [(2, 2), (2, 3), (3, 2)])
def test_a_sidestepped_convolution_computes_what_the_strided_one_does(dims, stride):
    conv_type, conv_fn = (nn.Conv2d, F.conv2d) if dims == 2 else (nn.Conv3d, F.conv3d)
    torch.manual_seed(0)
    conv = conv_type(4, 8, 1, stride=stride)
    weight, bias = conv.weight.detach().clone().requires_grad_(), conv.bias.detach().clone().requires_grad_()
    keys = list(conv.state_dict())
    sidestep_strided_pointwise_convolutions(conv)
    x = torch.randn((3, 4) + (9,) * dims, requires_grad=True)
    reference_x = x.detach().clone().requires_grad_()
    out = conv(x)
    reference = conv_fn(reference_x, weight, bias, stride=stride)
    torch.testing.assert_close(out, reference)
    out.square().sum().backward()
    reference.square().sum().backward()
    torch.testing.assert_close(conv.weight.grad, weight.grad)
    torch.testing.assert_close(conv.bias.grad, bias.grad)
    torch.testing.assert_close(x.grad, reference_x.grad)
    assert list(conv.state_dict()) == keys  # checkpoints load either way


def test_only_strided_pointwise_convolutions_are_changed():
    net = nn.Sequential(nn.Conv2d(4, 8, 1, stride=2), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                        nn.Conv2d(8, 8, 1), nn.Conv2d(8, 8, 1, stride=2, padding=1))
    sidestep_strided_pointwise_convolutions(net)
    assert [conv.stride for conv in net] == [(1, 1), (2, 2), (1, 1), (2, 2)]


# The shortcut convolution of the tiny classifier's ResNet (4 -> 8 channels, 8 x 8 -> 4 x 4, batch 16,
# channels_last), trained for a while: without the sidestep, oneDNN's jit_1x1:avx2 weight gradient
# corrupts the heap and glibc's checker aborts the process.
_SHORTCUT = """
import sys, torch
from torch import nn
from pathosynth.runtime import sidestep_strided_pointwise_convolutions
torch.set_num_threads(1)
conv = nn.Conv2d(4, 8, 1, stride=2).to(memory_format=torch.channels_last)
if sys.argv[1] == "sidestep":
    sidestep_strided_pointwise_convolutions(conv)
for _ in range(100):
    x = torch.randn(16, 4, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    conv(x).sum().backward()
    keep = [torch.empty(1000) for _ in range(20)]
print("done")
"""


def _malloc_checker() -> str | None:
    found = sorted(Path("/lib").glob("*-linux-gnu/libc_malloc_debug.so.0"))
    return str(found[0]) if found else None


@pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64", reason="x86-64 oneDNN kernels")
def test_the_classifier_shortcut_trains_under_the_avx2_cap():
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2", MALLOC_CHECK_="3")
    if _malloc_checker():
        env["LD_PRELOAD"] = _malloc_checker()
    done = subprocess.run([sys.executable, "-c", _SHORTCUT, "sidestep"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr[-2000:]
