"""GPU checks: every test here is marked ``gpu`` and skipped, with the reason shown, where no
CUDA device is visible. Run them on a GPU machine with ``python -m pytest -m gpu``."""

from __future__ import annotations

import pytest


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    here = __file__.rsplit("/", 1)[0]
    skip = pytest.mark.skip(reason="no CUDA device here: run `pytest -m gpu` on a GPU machine")
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.gpu)
            if not _cuda():
                item.add_marker(skip)
