"""The full canonical name of a run's configuration, for titles (heat-maps, curves, report pages):
``softmax[gate=mlp,expert=linear,experts=4,lr_ratio=100,epochs=10]``.

benchopt's habit: one name, ``router[field=value,...]``, says what ran. A sweep's configuration name
(``bench.sweep.spec.config_name``) lists only the fields its grid varies, so a fixed ``gate: mlp`` (what
makes a router a black box) would be missing from it; this name always states the model's shape (gate
network of a learned router, expert type, expert count) and then every other field that differs from the
``Config`` defaults, in Config field order. Left out: the seed and the fields that do not change the
numbers (data_root, device, threads).
"""
from __future__ import annotations

from typing import Any, Mapping

from moe.config import Config, FIELD_TYPES
from moe.routers import ROUTERS

ALWAYS = ("gate", "expert", "experts")  # stated even at their defaults
LEFT_OUT = ("router", "seed", "data_root", "device", "threads")
SHORT = {"top_k": "k"}


def format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else format(v, "g")
    if isinstance(v, (list, tuple)):
        return "[" + ";".join(format_value(x) for x in v) + "]"
    return str(v)


def uses_gate(router: str) -> bool:
    """Whether the router has a gate network (cfg.gate matters); unknown routers: True (say more, not less)."""
    return getattr(ROUTERS.get(router), "uses_gate_network", True) if router in ROUTERS else True


def full_name(config: Mapping[str, Any]) -> str:
    """``router[gate=...,expert=...,experts=...,<non-default fields>]`` of a (complete or partial) config dict."""
    defaults = Config().to_dict()
    router = str(config.get("router", defaults["router"]))
    items = []
    for k in ALWAYS:
        if k == "gate" and not uses_gate(router):
            continue
        items.append((k, config.get(k, defaults[k])))
    for k in FIELD_TYPES:
        if k in ALWAYS or k in LEFT_OUT or k not in config:
            continue
        if config[k] != defaults.get(k):
            items.append((k, config[k]))
    return f"{router}[{','.join(f'{SHORT.get(k, k)}={format_value(v)}' for k, v in items)}]"


def wrapped(name: str, width: int = 48) -> str:
    """The name broken after commas into lines of at most ``width`` characters (for figure titles)."""
    lines, line = [], ""
    for part in name.split(","):
        piece = part + ","
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line = ""
        line += piece
    lines.append(line[:-1])
    return "\n".join(lines)
