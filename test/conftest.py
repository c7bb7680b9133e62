"""Shared test fixtures. Tests are fast by default: tiny configs, few frames."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Hypothesis (the test_fuzz_* files): CI runs the same examples every time (derandomize, no
# example database); a per-example deadline (ms) turns a hang into a failure. New random
# examples on each run: HYPOTHESIS_PROFILE=ckd-explore python -m pytest test/test_fuzz_*.py
settings.register_profile(
    "ckd-ci", derandomize=True, database=None, deadline=5000, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ckd-explore", parent=settings.get_profile("ckd-ci"),
                          derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ckd-ci"))


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def one_torch_thread():
    """One torch thread for this test (after `_deterministic_torch`'s setting), restored
    afterwards. For tiny-model forwards: they gain nothing from a second thread, and on a busy
    2-core machine two OpenMP threads wait on each other at every barrier (examples then
    take seconds instead of milliseconds)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_cfg():
    from ckd_core.config import load_config
    return load_config("ckd_tiny")


@pytest.fixture
def tiny_mce_cfg():
    from ckd_core.config import load_config
    return load_config("ckd_tiny_mce")
