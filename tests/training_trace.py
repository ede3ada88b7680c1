"""Two records that `.ci/run` reads, written only when their environment variables name a file.

PATHOSYNTH_TEST_TRAINING_LIST: the node ids of the tests that train a network, in this process
(any autograd backward pass or gradient) or in a pathosynth / torchrun subprocess they start.
`scripts/test_avx2.sh` reruns exactly those with oneDNN and ATen capped to AVX2, where kernels that
are sound on AVX-512 have crashed.

PATHOSYNTH_TEST_CURRENT: the node id of the test running now, emptied when the session ends. A
test that kills the interpreter (a segfault or abort in a native kernel) leaves its id there, so
the script can say which test it was.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

_trained = False


def _mark_trained(*_args, **_kwargs) -> None:
    global _trained
    _trained = True


def _wrap(function):
    def wrapped(*args, **kwargs):
        _mark_trained()
        return function(*args, **kwargs)

    return wrapped


# the CLI verbs that train a network (a GAN, a classifier or the encoder feature space)
TRAINING_VERBS = {"train", "demo", "classify", "images", "tsne"}


def _starts_training_process(args) -> bool:
    words = [str(args)] if isinstance(args, (str, bytes, os.PathLike)) else [str(word) for word in args]
    return any("torchrun" in word for word in words) or bool(TRAINING_VERBS & set(words))


def _record_training() -> None:
    import torch.autograd

    torch.autograd.backward = _wrap(torch.autograd.backward)
    torch.autograd.grad = _wrap(torch.autograd.grad)
    original_init = subprocess.Popen.__init__

    def popen_init(self, args, *rest, **kwargs):
        if _starts_training_process(args):
            _mark_trained()
        original_init(self, args, *rest, **kwargs)

    subprocess.Popen.__init__ = popen_init


_training_tests: list[str] | None = None


def pytest_configure(config) -> None:
    global _training_tests
    if os.environ.get("PATHOSYNTH_TEST_TRAINING_LIST"):
        _record_training()
        _training_tests = []


def pytest_runtest_logstart(nodeid, location) -> None:
    global _trained
    _trained = False
    current = os.environ.get("PATHOSYNTH_TEST_CURRENT")
    if current:
        Path(current).write_text(nodeid + "\n")


def pytest_runtest_logfinish(nodeid, location) -> None:
    if _trained and _training_tests is not None:
        _training_tests.append(nodeid)


def pytest_sessionfinish(session, exitstatus) -> None:
    listing = os.environ.get("PATHOSYNTH_TEST_TRAINING_LIST")
    if listing and _training_tests is not None:
        Path(listing).write_text("".join(f"{nodeid}\n" for nodeid in _training_tests))
    current = os.environ.get("PATHOSYNTH_TEST_CURRENT")
    if current:
        Path(current).write_text("")
