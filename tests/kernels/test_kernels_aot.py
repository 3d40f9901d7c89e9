"""Every Triton kernel compiles ahead of time for sm_90 and sm_80 without spills or shared-memory overflow."""
import pytest

from kernels import aot as kinspect
from kernels import combine, grouped, plan, routing
from kernels._common import HAS_TRITON, interpreting

pytestmark = [
    pytest.mark.skipif(not HAS_TRITON, reason="Triton is not installed"),
    pytest.mark.skipif(interpreting(), reason="TRITON_INTERPRET=1: ahead-of-time compilation needs the compiler"),
]


def jit_kernels():
    from triton.runtime.jit import JITFunction

    return {name for mod in (combine, grouped, plan, routing) for name, v in vars(mod).items() if isinstance(v, JITFunction)}


def test_every_kernel_has_a_spec():
    specs = kinspect.all_specs(quick=True)
    assert {s.kernel.__name__ for s in specs} == jit_kernels()
    for spec in kinspect.all_specs(quick=False):
        kinspect.specialise(spec)  # every argument named, none unknown


BIG_BF16 = "grouped_mm[bfloat16,128x128x64"


def hopper_big_gemm(name: str, target: str) -> bool:
    """The configurations whose matrix instructions this test reads: only these are disassembled (0.3 s of CPU each)."""
    return target == "sm_90" and name.startswith(BIG_BF16)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["sm_90", "sm_80"])
def test_aot_compile_no_spills(target):
    results = kinspect.inspect_all((target,), quick=True, sass=hopper_big_gemm)
    bad = [r for r in results if r.spills or not r.shared_ok]
    assert not bad, "\n".join(f"{r.name} {r.target}: regs={r.regs} stack={r.stack} local={r.local} shared={r.shared}"
                              for r in bad)
    if target == "sm_90":
        big = [r for r in results if r.name.startswith(BIG_BF16)]
        assert big and all(r.mma > 0 for r in big), "the bf16 grouped GEMM should use HGMMA on Hopper"
