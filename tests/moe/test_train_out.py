"""``python -m moe.train --out``: a path the record cannot be written to is refused before training
(one ``error:`` line, exit 2), never after it (issue #12: a directory or an unwritable path used to
crash once training had finished, losing the record)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import moe.training.loop


@pytest.fixture
def no_training(monkeypatch):
    def run(*args, **kwargs):
        pytest.fail("training started although --out cannot be written")

    monkeypatch.setattr(moe.training.loop, "run", run)


def refused(capsys, out: str) -> str:
    assert moe.training.loop.main(["--out", out, "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("error: --out ") and "Traceback" not in err, err
    return err


def test_out_that_is_a_directory_is_refused_before_training(tmp_path, capsys, no_training):
    assert "a directory; give the record's file path" in refused(capsys, str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_out_under_a_file_is_refused_before_training(tmp_path, capsys, no_training):
    (tmp_path / "f").write_text("x")
    assert f"{tmp_path / 'f'} is a file" in refused(capsys, str(tmp_path / "f" / "record.json"))


def test_out_that_cannot_be_written_is_refused_before_training(tmp_path, capsys, no_training):
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o555)
    else:  # root ignores file modes; /sys refuses new files even to root
        folder = Path("/sys")
        try:
            (folder / "relb-probe").mkdir()
        except OSError:
            pass
        else:
            (folder / "relb-probe").rmdir()
            pytest.skip("no unwritable folder on this machine")
    assert f"cannot write in {folder}" in refused(capsys, str(folder / "sub" / "record.json"))


def test_out_whose_parent_is_still_to_be_made_is_accepted(tmp_path, monkeypatch, capsys):
    """The check passes a new folder (made when the record is written) and leaves nothing behind itself."""
    record = {"status": "ok", "test": {"accuracy": 0.5}, "timing": {"train_s": 0.1}}
    monkeypatch.setattr(moe.training.loop, "run", lambda cfg, progress=True: record)
    out = tmp_path / "new" / "deeper" / "record.json"
    assert moe.training.loop.main(["--out", str(out), "--epochs", "1", "--quiet"]) == 0
    assert out.is_file() and sorted(p.name for p in tmp_path.rglob("*")) == ["deeper", "new", "record.json"]


def test_an_existing_out_file_is_refused_unless_forced(tmp_path, monkeypatch, capsys):
    """A file of the user's at --out is never overwritten silently: refused before training, kept as it was;
    --force overwrites it with the record."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    monkeypatch.setattr(moe.training.loop, "run", lambda cfg, progress=True: pytest.fail("training started"))
    err = refused(capsys, str(notes))
    assert "the file exists; give a new path, or add --force to overwrite it" in err
    assert notes.read_text() == "my notes\n"
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "nowhere.json")  # a dangling link is something of the user's too
    assert "the file exists" in refused(capsys, str(link))
    record = {"status": "ok", "test": {"accuracy": 0.5}, "timing": {"train_s": 0.1}}
    monkeypatch.setattr(moe.training.loop, "run", lambda cfg, progress=True: record)
    assert moe.training.loop.main(["--out", str(notes), "--force", "--epochs", "1", "--quiet"]) == 0
    assert json.loads(notes.read_text())["status"] == "ok"
