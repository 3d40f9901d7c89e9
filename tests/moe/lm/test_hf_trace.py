"""The Hugging Face adapter on tiny randomly initialised OLMoE and Mixtral models built from a config (no download);
skipped when ``transformers`` is not installed (an optional extra)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from moe.records import trace as tr
from moe.records.hf_trace import routing_from_logits, trace_from_transformers
from moe.scoring import token_scores as ts


def test_routing_from_logits_hand_built():
    logits = torch.tensor([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0]])
    r = routing_from_logits(logits, 2, renormalize=True)
    np.testing.assert_array_equal(r.experts, [[1, 2], [0, 1]])  # the tie goes to the lower expert
    p = logits.softmax(-1)
    np.testing.assert_allclose(r.weights[0], (p[0, [1, 2]] / p[0, [1, 2]].sum()).numpy(), rtol=1e-6)
    np.testing.assert_allclose(routing_from_logits(logits, 2, renormalize=False).weights[1], [p[1, 0], p[1, 1]], rtol=1e-6)


def tiny(kind: str):
    transformers = pytest.importorskip("transformers")
    common = dict(vocab_size=64, hidden_size=16, intermediate_size=8, num_hidden_layers=2, num_attention_heads=2,
                  num_key_value_heads=2, num_experts_per_tok=2, max_position_embeddings=32, eos_token_id=None,
                  bos_token_id=None, pad_token_id=None)
    torch.manual_seed(0)
    if kind == "olmoe":
        return transformers.OlmoeForCausalLM(transformers.OlmoeConfig(num_experts=4, **common))
    return transformers.MixtralForCausalLM(transformers.MixtralConfig(num_local_experts=4, **common))


@pytest.mark.parametrize("kind", ["olmoe", "mixtral"])
def test_trace_from_tiny_random_model(kind, tmp_path):
    model = tiny(kind)
    ids = torch.randint(0, 64, (3, 7), generator=torch.Generator().manual_seed(1))
    domain = torch.tensor([0, 1, 0])[:, None].expand(3, 7)
    trace = trace_from_transformers(model, ids, domain=domain, domain_names=["a", "b"])
    assert trace.layer_names == ["moe layer 0", "moe layer 1"] and trace.n_experts == [4, 4] and trace.top_k(0) == 2
    np.testing.assert_array_equal(trace.token_ids, ids.reshape(-1).numpy())
    # the experts are the top-2 of the logits the model reported
    logits = trace.layers[0].logits
    assert set(trace.layers[0].experts[0]) == set(np.argsort(-logits[0])[:2])
    back = tr.read(tr.write(trace, tmp_path / "hf.npz"))
    assert ts.layer_scores(back) == ts.layer_scores(trace)


def test_converted_trace_gets_the_same_report(tmp_path):
    from moe.pictures.run_report import main
    model = tiny("olmoe")
    ids = torch.randint(0, 64, (2, 9), generator=torch.Generator().manual_seed(2))
    trace = trace_from_transformers(model, ids, domain=torch.zeros(2, 9, dtype=torch.long), domain_names=["text"])
    path = tr.write(trace, tmp_path / "olmoe.npz")
    assert main([str(path)]) == 0
    assert (tmp_path / "olmoe.report.html").read_text().count('title="expert ') == 2 * 18
