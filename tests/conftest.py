"""Shared pytest setup.

* ``--runslow`` runs the tests marked ``slow`` (skipped by default).
* Tests marked ``gpu`` are skipped when ``torch.cuda.is_available()`` is False.

The markers themselves are declared in ``pyproject.toml`` (``--strict-markers`` is on).

Each test process uses one torch thread: ``make test`` runs two xdist workers on CI's two cores, and
more threads than cores only adds contention (measured about 3x slower under load).
"""

from __future__ import annotations

import os

import pytest

if os.environ.get("POSEGEN_TEST_THREADS", "1") != "0":
    import torch

    torch.set_num_threads(int(os.environ.get("POSEGEN_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _keep_thread_count():
    """Restore the torch thread count after each test: the CLI's ``--threads`` sets the global value."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run the tests marked slow (minutes)")


def pytest_collection_modifyitems(config, items):
    skip_slow = None
    if not config.getoption("--runslow"):
        skip_slow = pytest.mark.skip(reason="slow: pass --runslow to run it")
    skip_gpu = None
    if any("gpu" in item.keywords for item in items):
        import torch  # only imported when some collected test needs it

        if not torch.cuda.is_available():
            skip_gpu = pytest.mark.skip(reason="gpu: torch.cuda.is_available() is False")
    for item in items:
        if skip_slow is not None and "slow" in item.keywords:
            item.add_marker(skip_slow)
        if skip_gpu is not None and "gpu" in item.keywords:
            item.add_marker(skip_gpu)
