"""Helpers shared by the tests: tiny IDX files in torchvision's layout (``tests.fake_mnist``), and the one-line config
errors."""
from __future__ import annotations

import pytest

from moe.config import ConfigError
from moe.validate import from_dict
from tests.fake_mnist import make_fake_mnist, write_idx

__all__ = ["config_problem", "make_fake_mnist", "write_idx"]


def config_problem(values: dict) -> str:
    """The single problem line that ``from_dict(values)`` must raise."""
    with pytest.raises(ConfigError) as info:
        from_dict(values)
    (line,) = info.value.problems
    return line
