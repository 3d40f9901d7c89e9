"""Provenance that holds: sweep.json keeps the sweep file's text as it ran and the report shows that text; --resume
refuses with one line when the sweep file, the data or the code changed since the sweep started, unless
--allow-changes, and then the report marks the mixture. No Ray: the Tune run is the stand-in of test_out_and_resume."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from bench.report.sweep import write_sweep_report
from bench.sweep import cli, resume, runner
from tests.bench.conftest import TINY
from tests.conftest import figures_from_store
from tests.bench.sweep.test_out_and_resume import fake_tune, one_error, stored  # noqa: F401  (fixtures)

pytestmark = pytest.mark.usefixtures("shared_figures")  # the report's figures: drawn once per test run (conftest)


@pytest.fixture(scope="module")
def interrupted_once(tmp_path_factory, figure_store):
    """A TINY sweep stopped after 2 of its 4 trials, made once per test file: (its directory, its sweep file). Its
    report's figures from the run's store too (``figures_from_store``)."""
    def tune(sweep, trials, todo, folder, options, *, n_done, datasets=None):
        for t in todo[:2]:
            folder.write_record(t.index, stored(t.index))
        return {"n_run": 2, "wall_s": 1.0, "trial_s": 1.0, "slots": 1, "overhead": 1.0, "interrupted": True,
                "missing": [t.index for t in todo[2:]]}

    root = tmp_path_factory.mktemp("interrupted")
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY, sort_keys=False))
    out = root / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "_tune_trials", tune)
        figures_from_store(mp, figure_store)
        assert cli.main([str(path), "--out", str(out)]) == 130
    return out, path


@pytest.fixture
def interrupted(interrupted_once, tmp_path, capsys):
    """A copy of that sweep in this test's own folder: (its directory, its sweep file), sweep.json naming the copy's
    sweep file (the one path it holds; the report that names it too is written again by each resume)."""
    made, made_path = interrupted_once
    path = tmp_path / made_path.name
    shutil.copy2(made_path, path)
    out = tmp_path / "out"
    shutil.copytree(made, out)
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["sweep"]["path"] == str(made_path)
    meta["sweep"]["path"] = str(path)
    (out / "sweep.json").write_text(json.dumps(meta, indent=1))
    capsys.readouterr()
    return out, path


def test_sweep_json_keeps_the_file_as_it_ran_and_the_report_shows_it(interrupted, capsys):
    out, path = interrupted
    ran = open(path).read()
    assert json.loads((out / "sweep.json").read_text())["sweep"]["text"] == ran
    with open(path, "a") as f:
        f.write("# edited after the run\n")
    page = write_sweep_report(out).read_text()
    assert "as it ran" in page and "edited after the run" not in page and "has changed since the sweep ran" in page


@pytest.mark.parametrize("change, needle", [
    ("file", "has changed since the sweep started"),
    ("code", "the code differs (git"),
    ("data", "the data of gm6 differ (sha256"),
])
def test_resume_after_a_change_is_refused_unless_allowed_and_then_marked(interrupted, capsys, monkeypatch, fake_tune,
                                                                         change, needle):
    out, path = interrupted
    capsys.readouterr()
    if change == "file":
        with open(path, "a") as f:
            f.write("# edited\n")
    elif change == "code":
        real = resume.versions  # where --resume reads the code's version now
        monkeypatch.setattr(resume, "versions", lambda: {**real(), "git": "0000000"})
    else:
        real_load = runner.load_datasets

        def other_data(trials):
            data = real_load(trials)
            for arrays in data.values():
                arrays["x_train"] = np.array(arrays["x_train"], copy=True)
                arrays["x_train"][0] += 1  # one sample changed
            return data

        monkeypatch.setattr(runner, "load_datasets", other_data)
    line = one_error(capsys, ["--resume", str(out)])
    assert needle in line and "--allow-changes" in line and fake_tune == []
    assert cli.main(["--resume", str(out), "--allow-changes"]) == 0
    assert fake_tune == [[2, 3]]
    mixed = json.loads((out / "sweep.json").read_text())["mixed"]
    assert len(mixed) == 1 and needle in mixed[0]["changes"][0]
    assert "Mixed runs" in (out / "report.html").read_text()


def test_resume_without_changes_is_not_marked(interrupted, capsys, fake_tune):
    out, _ = interrupted
    assert cli.main(["--resume", str(out)]) == 0 and fake_tune == [[2, 3]]
    assert "mixed" not in json.loads((out / "sweep.json").read_text())
    assert "Mixed runs" not in (out / "report.html").read_text()
