"""bench.figures.phase: the phase diagram of the planted sweep, from a hand-made runs.csv."""
import pandas as pd
import pytest

from bench.figures import phase


def runs() -> pd.DataFrame:
    rows = []
    for router, slope in (("softmax", 0.8), ("hash", 0.0)):
        for ent in (0.0, 0.5, 1.0):
            for seed in (0, 1):
                rows.append({"name": f"{router}[planted_entanglement={ent:g}]", "status": "ok", "seed": seed,
                             "planted_entanglement": ent, "module_nmi": 0.9 - slope * ent + 0.02 * seed,
                             "nmi": 0.8 * (1 - ent)})
    rows.append({"name": "softmax[planted_entanglement=0]", "status": "error", "seed": 2, "planted_entanglement": 0.0,
                 "module_nmi": None, "nmi": None})
    return pd.DataFrame(rows)


def test_family_drops_only_the_entanglement_from_the_name():
    assert phase.family("topk[k=2,planted_entanglement=0.5]") == "topk[k=2]"
    assert phase.family("softmax[planted_entanglement=0]") == "softmax"
    assert phase.family("topk[planted_entanglement=1,k=2]") == "topk[k=2]"


def test_phase_table_means_over_the_ok_seeds():
    t = phase.phase_table(runs(), "module_nmi").set_index(["family", "planted_entanglement"])
    assert t.loc[("softmax", 0.0), "mean"] == pytest.approx(0.91) and t.loc[("softmax", 0.0), "count"] == 2
    assert t.loc[("softmax", 1.0), "mean"] == pytest.approx(0.11)
    assert t.loc[("hash", 0.5), "mean"] == pytest.approx(0.91)
    with pytest.raises(ValueError, match="module_ari"):
        phase.phase_table(runs(), "module_ari")


def test_the_cli_writes_the_png_and_reports_a_missing_file(tmp_path, capsys):
    runs().to_csv(tmp_path / "runs.csv", index=False)
    out = tmp_path / "phase.png"
    assert phase.main([str(tmp_path), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "module_nmi" in capsys.readouterr().out
    assert phase.main([str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert capsys.readouterr().err.startswith("error:")
