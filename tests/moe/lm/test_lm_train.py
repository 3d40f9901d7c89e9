"""A short run of the language model on small text made here: the record's fields, the trace it writes (read back,
the same scores), the unigram baseline beaten, same seed same numbers, and the CLI's one-line errors."""
from __future__ import annotations

import json

import pytest

from moe.scoring import token_scores as ts
from moe.records import trace as tr
from moe.data.text import kjv_from_lines
from moe.training.lm_loop import run_lm
from moe.train import main
from moe.validate import from_dict

from tests.moe.lm.test_text_data import verse_lines

SMALL = {"dataset": "kjv", "lm_width": 16, "lm_heads": 2, "context": 16, "experts": 4, "expert_hidden": 16,
         "n_train": 96, "n_test": 24, "batch_size": 8, "epochs": 2, "lr": 1e-2}


@pytest.fixture(scope="module")
def text():
    return kjv_from_lines(verse_lines(6))


@pytest.fixture(scope="module")
def record_and_trace(text, tmp_path_factory):
    path = tmp_path_factory.mktemp("lm") / "trace.npz"
    return run_lm(from_dict(SMALL), data=text, trace_out=str(path)), path


def test_record_fields_and_learning(record_and_trace):
    record, _ = record_and_trace
    assert record["status"] == "ok" and len(record["history"]) == 2
    val, test = record["validation"], record["test"]
    assert val["bits_per_byte"] < val["unigram_bits_per_byte"] - 0.5  # repetitive text: far below the unigram model
    assert test["bits_per_byte"] == pytest.approx(test["loss"] / 0.6931471805599453)
    assert [s["layer"] for s in record["token_scores"]] == ["block 0", "block 1"]
    for layer in record["router_saturation"]:
        assert layer["saturation"][-1] == 1.0 and all(0 <= s <= 1 for s in layer["saturation"])
    for c in record["causal"]:
        assert len(c["domain_increase_bits"]) == 7 and len(c["domain_increase_bits"][0]) == 4
    json.dumps(record, allow_nan=False)  # the record is plain JSON


def test_trace_is_what_the_scores_read(record_and_trace):
    record, path = record_and_trace
    trace = tr.read(path)
    assert len(trace) == record["trace"]["tokens"] == record["validation"]["n_tokens"]
    assert ts.layer_scores(trace) == record["token_scores"]
    assert trace.top_k(0) == 2 and trace.layers[0].logits.shape == (len(trace), 4)


def test_same_seed_same_numbers(text, record_and_trace):
    again = run_lm(from_dict(SMALL), data=text)
    assert again["history"] == [dict(h, epoch_s=again["history"][i]["epoch_s"]) for i, h in enumerate(record_and_trace[0]["history"])]
    assert again["validation"] == record_and_trace[0]["validation"]


def test_cli_bad_text_fields_are_one_line_errors(capsys):
    assert main(["--dataset", "kjv", "--router", "expert_choice", "--lm-heads", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error: ") for line in err)
    assert main(["--dataset", "gm6", "--trace", "x.npz"]) == 2
    assert "text datasets only" in capsys.readouterr().err


def test_flat_scores_for_the_tables_and_numpy_data(text, record_and_trace):
    record, _ = record_and_trace
    for split in ("validation", "test"):
        assert all(v is None or isinstance(v, (int, float)) for v in record[split].values()), split
    assert record["validation"]["vocabulary_specialisation_layer1"] == record["token_scores"][1]["vocabulary_specialisation"]
    assert len(record["domain_bits_per_byte"]["test"]) == 7
    again = run_lm(from_dict(SMALL), data=text.to_numpy())  # a sweep's way: the dataset as numpy arrays
    assert again["validation"] == record["validation"]


def test_table_columns_name_the_records_flat_scores(record_and_trace):
    from moe.scoring.token_scores import language_model_columns, table_columns
    record, _ = record_and_trace
    flat = {f"val_{k}" for k in record["validation"] if "_layer" in k} | set(language_model_columns(record))
    assert flat == table_columns(2)
