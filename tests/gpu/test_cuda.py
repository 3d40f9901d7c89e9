"""On an NVIDIA GPU (skipped elsewhere): the Triton kernels against the torch fallback on CUDA tensors, a
training run on the GPU against the same run on the CPU, and stacked seeds on the GPU against separate GPU
runs. ``python -m bench.speed.gpu_check`` runs these with the GPU benchmarks."""
import pytest
import torch

import moe.training.loop
from kernels import grouped_mm, topk_route
from moe.training.stacked import train_stacked

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU (CUDA)")


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-4), (torch.bfloat16, 3e-2)])
@pytest.mark.parametrize("T,E,k,K,N", [(1, 4, 1, 16, 8), (513, 8, 2, 100, 600), (4096, 64, 2, 256, 256)])
def test_triton_against_torch_on_cuda(T, E, k, K, N, dtype, tol):
    g = torch.Generator().manual_seed(T)
    logits = torch.randn(T, E, generator=g).cuda()
    plan_t, plan_c = topk_route(logits, k, backend="triton"), topk_route(logits, k, backend="torch")
    assert torch.equal(plan_t.expert_ids, plan_c.expert_ids) and torch.equal(plan_t.order, plan_c.order)
    torch.testing.assert_close(plan_t.weights, plan_c.weights, rtol=1e-5, atol=1e-6)
    x = torch.randn(T, K, generator=g).cuda().to(dtype).requires_grad_(True)
    w = (torch.randn(E, K, N, generator=g) / K ** 0.5).cuda().to(dtype).requires_grad_(True)
    outs = []
    for backend in ("triton", "torch"):
        x.grad = w.grad = None
        y = grouped_mm(x, w, plan_t.offsets, gather_index=plan_t.row_tokens, backend=backend)
        y.float().square().sum().backward()
        outs.append((y.float(), x.grad.float(), w.grad.float()))
    for a, b in zip(*outs):
        scale = b.abs().max().clamp_min(1.0)
        assert ((a - b).abs().max() / scale) <= tol


def test_a_run_on_the_gpu_matches_the_cpu():
    cfg = {"dataset": "gm6", "experts": 4, "router": "topk", "top_k": 2, "epochs": 2, "n_train": 600, "n_test": 200}
    gpu, cpu = moe.training.loop.run({**cfg, "device": "cuda"}), moe.training.loop.run({**cfg, "device": "cpu"})
    assert gpu["status"] == cpu["status"] == "ok"
    assert abs(gpu["history"][0]["train_loss"] - cpu["history"][0]["train_loss"]) < 1e-3
    assert abs(gpu["test"]["accuracy"] - cpu["test"]["accuracy"]) <= 0.05


@pytest.mark.parametrize("router", [{"router": "softmax"}, {"router": "topk", "top_k": 2}, {"router": "hash"},
                                    {"router": "expert_choice"}], ids=lambda r: r["router"])
def test_stacked_seeds_on_the_gpu(router):
    """Every router the stacked path takes (topk through the Triton kernel on CUDA, as each separate run)."""
    cfg = {"dataset": "gm6", "experts": 3, "epochs": 2, "n_train": 600, "n_test": 200, "device": "cuda", **router}
    stacked = train_stacked(cfg, [0, 1])
    for s, rec in zip((0, 1), stacked):
        alone = moe.training.loop.run({**cfg, "seed": s})
        assert abs(rec["history"][-1]["train_loss"] - alone["history"][-1]["train_loss"]) < 1e-4


def test_the_language_model_on_the_gpu_matches_the_cpu():
    """The language model (moe.training.lm_loop) on CUDA, through the Triton routing and grouped products, against
    the same run on the CPU (torch fallback); and a run resumed on the GPU from its state after epoch 1."""
    from moe.data.text import kjv_from_lines
    from tests.moe.lm.test_lm_train import SMALL
    from tests.moe.lm.test_text_data import verse_lines

    text = kjv_from_lines(verse_lines(6))
    states = []
    gpu = moe.training.loop.run({**SMALL, "device": "cuda"}, data=text, on_state=states.append)
    cpu = moe.training.loop.run({**SMALL, "device": "cpu"}, data=text)
    assert gpu["status"] == cpu["status"] == "ok"
    assert gpu["provenance"]["kernel_backend"] == "triton" and gpu["provenance"]["device"].startswith("cuda")
    assert abs(gpu["history"][0]["train_loss"] - cpu["history"][0]["train_loss"]) < 1e-3
    assert abs(gpu["validation"]["bits_per_byte"] - cpu["validation"]["bits_per_byte"]) < 0.05
    assert [s["layer"] for s in gpu["token_scores"]] == [s["layer"] for s in cpu["token_scores"]]
    resumed = moe.training.loop.run({**SMALL, "device": "cuda"}, data=text, state=states[0])
    assert resumed["resumed_from_epoch"] == 1
    assert abs(resumed["history"][-1]["train_loss"] - gpu["history"][-1]["train_loss"]) < 1e-4
