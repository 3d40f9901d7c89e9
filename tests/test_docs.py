"""What a reader sees: a short README whose links resolve and whose component names are the registries', no issue
numbers in user-facing text, and every --help choice list equal to the registry it offers."""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import re
from pathlib import Path

import pytest

from bench.reproduce import cli as reproduce_cli
from bench.reproduce.results import BUDGET_WORDS
from bench.reproduce.runner import SWEEPS
from bench.sweep import command as sweep_command
from moe.data import DATASETS
from moe.experts import EXPERTS
from moe.objectives import OBJECTIVES
from moe.regimes import REGIMES
from moe.routers import ROUTERS
from moe.training import loop, stacked
from moe.validate import field_choices, from_dict

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 160
USER_PAGES = [README, ROOT / "kernels" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
CLIS = ["moe.train", "moe.report", "moe.training.controls", "moe.scoring.score_docs", "bench.sweep.cli",
        "bench.reproduce.cli", "bench.table.cli", "bench.report.cli", "bench.compare.cli", "bench.figures.phase",
        "bench.speed.gpu_check", "bench.speed.kernel_bench", "bench.speed.lm_check", "bench.speed.same_records", "bench.speed.sweep_speed",
        "bench.speed.train_speed", "kernels.aot"]
REGISTRIES = {"routers": ROUTERS, "experts": EXPERTS, "objectives": OBJECTIVES, "datasets": DATASETS,
              "regimes": REGIMES}


def help_text(module: str) -> str:
    mod = importlib.import_module(module)
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exit_:
        mod.main(["--help"])
    assert exit_.value.code in (0, None)
    return out.getvalue()


def test_the_readme_fits_a_screenful_or_three():
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines; move detail to docs/"


@pytest.mark.parametrize("page", USER_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_issue_numbers_in_user_pages(page):
    text = page.read_text()
    assert not re.search(r"(?i)\bissue", text), re.search(r"(?i).{0,40}\bissue.{0,40}", text).group(0)


@pytest.mark.parametrize("module", CLIS)
def test_no_issue_numbers_in_help_texts(module):
    text = help_text(module)
    assert text.startswith("usage:")
    assert not re.search(r"(?i)\bissue", text), re.search(r"(?i).{0,40}\bissue.{0,40}", text).group(0)


@pytest.mark.parametrize("page", [p for p in USER_PAGES if p.name != "REPRODUCTION.md"] + [README],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page.relative_to(ROOT)} links to {target}, which does not exist"


def test_the_readme_names_exactly_the_registered_components():
    lines = {m.group(1): m.group(2) for m in re.finditer(r"(?m)^- (\w+): (.*)$", README.read_text())}
    for kind, registry in REGISTRIES.items():
        assert kind in lines, f"README lists no {kind}"
        named = re.findall(r"`([^`]+)`", lines[kind])
        assert sorted(named) == sorted(registry.names()), f"README's {kind}: {named}; registered: {registry.names()}"


def test_moe_train_help_lists_each_registry():
    actions = {a.dest: a.help for a in loop.parser()._actions}
    for field, registry in {"router": ROUTERS, "expert": EXPERTS, "objective": OBJECTIVES, "dataset": DATASETS,
                            "regime": REGIMES}.items():
        listed = re.search(r"choices: ([^;]+);", actions[field]).group(1).split(" | ")
        assert listed == registry.names(), field
    assert "implicit" in actions["expert"]
    for field, names in field_choices().items():  # the fixed lists too (validation reads the same tuples)
        listed = re.search(r"choices: ([^;]+);", actions[field]).group(1).split(" | ")
        assert listed == names, field


def test_the_stackable_routers_in_sweep_help_are_the_stacked_paths():
    text = " ".join(help_text("bench.sweep.cli").split())
    routers = re.search(r"routers ([\w, ]+?) \(topk without noise\)", text).group(1).split(", ")
    assert routers == list(stacked.ROUTERS) and all(r in ROUTERS for r in routers)
    for router in routers:  # each one really stacks: no problem but those of other fields
        assert stacked.problems(from_dict({"router": router})) == []
    for router in set(ROUTERS.names()) - set(routers):
        cfg = from_dict({"router": "softmax"})
        cfg.router = router  # the stacked path's own rule, whatever else the router needs
        assert any(p.startswith("router:") for p in stacked.problems(cfg))


def test_reproduce_help_names_its_sweeps_and_budgets():
    text = " ".join(help_text("bench.reproduce.cli").split())
    assert ", ".join(SWEEPS) in text and "{" + ",".join(BUDGET_WORDS) + "}" in text
    assert reproduce_cli.SWEEPS == SWEEPS and sweep_command.spec.available().keys() >= set(SWEEPS)


def _resolves(dotted: str) -> bool:
    try:
        if importlib.util.find_spec(dotted) is not None:
            return True
    except (ImportError, ValueError):
        pass
    module, _, attr = dotted.rpartition(".")
    try:
        return bool(module) and hasattr(importlib.import_module(module), attr)
    except ImportError:
        return False


@pytest.mark.parametrize("page", [README, ROOT / "kernels" / "README.md", *sorted((ROOT / "docs").glob("*.md"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_and_file_a_page_names_exists(page):
    """Module moves leave no stale name behind: each `moe/x.py` path, `python -m x.y` and `x.y.z` name resolves."""
    text = page.read_text()
    for path in re.findall(r"`((?:moe|bench|kernels)/[\w/]+\.py)`", text):
        assert (ROOT / path).exists(), f"{page.name} names {path}, which does not exist"
    names = re.findall(r"python -m ((?:moe|bench|kernels)(?:\.\w+)+)", text)
    names += re.findall(r"`((?:moe|bench|kernels)(?:\.\w+)+)", text)
    for name in set(names):
        assert _resolves(name), f"{page.name} names {name}, which is neither a module nor a module's attribute"
