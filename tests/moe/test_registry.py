"""The one 'did you mean' helper: ranking of suggestions for unknown names."""
import pytest

from moe.registry import Registry, UnknownNameError, did_you_mean, suggestion

FIELDS = ["experts", "expert", "expert_hidden", "lr", "lr_ratio", "epochs", "grid", "seed"]


@pytest.mark.parametrize("typed, meant", [
    ("experst", "experts"),  # a swap keeps the letters: not 'expert', which difflib alone prefers
    ("expers", "experts"),
    ("Experts", "experts"),  # case
    ("epoch", "epochs"),  # plural
    ("seeds", "seed"),  # singular
    ("lr_r", "lr_ratio"),  # an exact prefix
    ("lrr", "lr"),
    ("gird", "grid"),
    ("expert_hiden", "expert_hidden"),  # not 'expert', which it merely begins with
])
def test_did_you_mean_ranks_the_likely_name_first(typed, meant):
    assert did_you_mean(typed, FIELDS) == meant


def test_nothing_close_gives_no_suggestion():
    assert did_you_mean("xyzzy", FIELDS) is None
    assert suggestion("xyzzy", FIELDS) == ""
    assert suggestion("gird", FIELDS) == " (did you mean 'grid'?)"


def test_registry_unknown_name_names_field_suggestion_and_choices():
    reg = Registry("router")
    for name in ("softmax", "topk"):
        reg.register(name)(object())
    with pytest.raises(UnknownNameError, match=r"^router: unknown router 'softmx' \(did you mean 'softmax'\?\); valid choices: softmax, topk$"):
        reg.get("softmx", field="router")
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("topk")(object())
