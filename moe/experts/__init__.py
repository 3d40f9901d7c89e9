"""Experts by name: the plugins, one small file each, registered in ``EXPERTS`` (``moe/experts/base.py``)."""
from moe.experts.base import EXPERTS, ExpertBank  # noqa: F401  (re-exported)
from moe.experts import cnn, implicit, linear, mlp, seed_cnn  # noqa: F401,E402  (register)
