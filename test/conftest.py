"""Shared test fixtures. Tests are fast by default: tiny configs, few frames."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield


@pytest.fixture
def tiny_cfg():
    from ckd_core.config import load_config
    return load_config("ckd_tiny")


@pytest.fixture
def tiny_mce_cfg():
    from ckd_core.config import load_config
    return load_config("ckd_tiny_mce")
