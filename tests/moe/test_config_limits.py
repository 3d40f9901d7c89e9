"""Field limits are data: moe.field_limits.LIMITS is the one table of each numeric field's range and reason, and it
drives validation (moe.validate), --help (short lines) and docs/config.md (generated)."""
from __future__ import annotations

import math
import typing
from pathlib import Path

import pytest

from moe.config import FIELD_TYPES, Config, ConfigError
from moe.field_limits import LIMITS, help_text
from moe.config_docs import DOCS, markdown
from moe.validate import from_dict

ROOT = Path(__file__).resolve().parents[2]
HELP_WIDTH = 110  # a field's --help text, before its choices and default


def scalar_number(name: str) -> bool:
    args = typing.get_args(typing.get_type_hints(Config)[name]) or (typing.get_type_hints(Config)[name],)
    return any(a in (int, float) for a in args)


def test_every_numeric_field_has_a_limit_and_every_limit_a_field():
    assert set(LIMITS) <= set(FIELD_TYPES)
    assert {n for n in FIELD_TYPES if scalar_number(n)} == set(LIMITS)


def test_every_default_lies_within_its_limit():
    defaults = Config()
    for name, limit in LIMITS.items():
        v = getattr(defaults, name)
        assert v is None or (limit.low < v if limit.low_open else limit.low <= v), name
        assert v is None or (v < limit.high if limit.high_open else v <= limit.high), name


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_validation_refuses_a_value_just_outside_the_table(name):
    limit = LIMITS[name]
    below = limit.low if limit.low_open else (limit.low - 1 if limit.integer else limit.low - max(abs(limit.low), 1e-3) * 0.5)
    above = limit.high if limit.high_open else (limit.high + 1 if limit.integer else math.nextafter(limit.high, math.inf) * 1.5)
    for bad in (below, above):
        with pytest.raises(ConfigError) as info:
            from_dict({name: bad})
        assert any(p.startswith(f"{name}: must be") for p in info.value.problems), info.value.problems


def test_help_lines_are_short_and_start_with_the_range():
    for name in FIELD_TYPES:
        text = help_text(name)
        assert 0 < len(text) <= HELP_WIDTH, (name, len(text), text)
        if name in LIMITS:
            assert text.startswith(LIMITS[name].text() + ": ")


def test_docs_config_md_is_the_generated_text():
    assert (ROOT / DOCS).read_text(encoding="utf-8") == markdown(), f"run python -m moe.config_docs --write {DOCS}"
