"""Report of one run record: ``python -m moe.report RUN.json``.

Prints the test scores as an aligned table with the direction of each metric, and writes next to the
record, or into the folder ``--out DIR`` names (atomically), ``RUN.allocation.png``, the class x expert
heat-map (titled with the full configuration name, ``moe.records.naming``), ``RUN.curves.png``, the per-epoch
accuracy, loss and expert shares, the views the record holds (``moe.records.model_views``: ``RUN.gate_regions.png`` on
2-D data, ``RUN.expert_weights.png`` for linear experts on images, ``RUN.prototypes.png``), ``RUN.ablation.png``, the expert x class heat-map of the accuracy drops when each
expert is removed (when the record has ``ablation``, see ``moe.scoring.ablation``), and
``RUN.summary.md``, a short Markdown summary. (The README's ``run.json`` example's outputs are in
``.gitignore``.) Reads only the record (schema 1, written by ``moe.training.loop``): ``schema``,
``status``, ``error``, ``config``, ``dataset`` (``name``, ``class_names``, ``n_train``, ``n_test``),
``test``, ``allocation``, ``timing``, ``versions``. Non-finite scores are stored as JSON null and shown
as ``nan``. A missing, unreadable or malformed record is one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from pathlib import Path

from moe.records.naming import full_name, wrapped
from moe.scoring.scores import DIRECTIONS
from moe.pictures.plots import ablation_heatmap, allocation_heatmap, save_png
from moe.records.record import SCHEMA, atomic_write_bytes
from moe.pictures.view_plots import record_figures
from moe.pictures.token_pictures import token_report
from moe.records.trace import TraceError
from moe.records.trace import read as read_trace

__all__ = ["RecordError", "load_record", "output_paths", "score_rows", "format_scores",
           "summary_markdown", "write_report", "write_outputs", "figure_path", "main"]

_REQUIRED = ("schema", "status", "config", "dataset", "test", "allocation")


class RecordError(ValueError):
    """A file that cannot be read as a run record; the message is one line."""


def load_record(path: str | Path) -> dict:
    """Read and check a run record; raises RecordError with a one-line message."""
    path = Path(path)
    if not path.exists():
        raise RecordError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{path}: cannot read: {exc}") from None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError; nesting or an integer beyond Python's limits
        raise RecordError(f"{path}: not JSON: {str(exc)[:200] or type(exc).__name__}") from None
    _check_record(record, path)
    return record


def _check_record(record, path: Path) -> None:
    if not isinstance(record, dict):
        raise RecordError(f"{path}: not a run record (a JSON {type(record).__name__}, not an object)")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise RecordError(f"{path}: not a run record (missing {', '.join(missing)})")
    if record["schema"] != SCHEMA:
        raise RecordError(f"{path}: unsupported record schema {record['schema']!r} (expected {SCHEMA})")
    for key in ("config", "dataset"):
        if not isinstance(record[key], dict):
            raise RecordError(f"{path}: not a run record ({key} is not an object)")
    test = record["test"]
    if test is not None and not isinstance(test, dict):
        raise RecordError(f"{path}: not a run record (test is not an object)")
    for key, value in (test or {}).items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RecordError(f"{path}: not a run record (test.{key} is not a number)")
    for key, kind in _OPTIONAL.items():
        if record.get(key) is not None and not isinstance(record[key], kind):
            raise RecordError(f"{path}: not a run record ({key} is not {_KINDS[kind]})")
    if not all(isinstance(h, dict) for h in record.get("history") or []):
        raise RecordError(f"{path}: not a run record (history is not a list of objects, one per epoch)")
    if not all(isinstance(v, dict) for v in (record.get("views") or {}).values()):
        raise RecordError(f"{path}: not a run record (views is not an object of objects, one per view)")
    _check_dynamics(record.get("routing_dynamics"), path)
    _check_allocation(record, path)
    if record.get("ablation") and not _is_matrix(record["ablation"], allow_null=True, nonnegative=False):
        raise RecordError(f"{path}: not a run record (ablation is not an E x C matrix of numbers)")


_OPTIONAL = {"status": str, "error": str, "history": list, "views": dict, "ablation": list, "ablation_rule": str,
             "routing_dynamics": dict, "timing": dict, "versions": dict}  # each may be absent or null
_KINDS = {str: "text", list: "a list", dict: "an object"}


def _is_number(v, allow_null: bool = False) -> bool:
    return (v is None and allow_null) or (isinstance(v, (int, float)) and not isinstance(v, bool))


def _is_matrix(rows, allow_null: bool = False, nonnegative: bool = True) -> bool:
    """A non-empty list of non-empty lists of one length, of numbers (>= 0 when ``nonnegative``; or null)."""
    return (isinstance(rows, list) and bool(rows) and all(isinstance(r, list) and r for r in rows)
            and len({len(r) for r in rows}) == 1
            and all(_is_number(v, allow_null) and (not nonnegative or v is None or v >= 0) for r in rows for v in r))


def _check_dynamics(dynamics, path: Path) -> None:
    """``routing_dynamics`` (``moe.scoring.saturation``): either ``undefined`` (why), or the curve and its keys."""
    if not dynamics or dynamics.get("undefined"):
        return
    curve = dynamics.get("router_saturation")
    if not (isinstance(curve, list) and all(_is_number(v, allow_null=True) for v in curve)
            and {"k", "reference_epoch", "saturation_epoch"} <= dynamics.keys()):
        raise RecordError(f"{path}: not a run record (routing_dynamics needs router_saturation, a list of numbers, "
                          "and k, reference_epoch, saturation_epoch)")


def _check_allocation(record: dict, path: Path) -> None:
    alloc = record["allocation"]
    if alloc is None or alloc == []:
        return
    if not _is_matrix(alloc):
        raise RecordError(f"{path}: not a run record (allocation is not a C x E matrix of counts)")
    names = record["dataset"].get("class_names")
    if names is not None and (not isinstance(names, list) or len(names) != len(alloc)):
        raise RecordError(f"{path}: not a run record (dataset.class_names does not match the "
                          f"{len(alloc)} rows of allocation)")


def output_paths(record_path: str | Path, out_dir: str | Path | None = None) -> tuple[Path, Path]:
    """(heat-map PNG, Markdown summary) next to the record (or in ``out_dir``): RUN.json -> RUN.allocation.png,
    RUN.summary.md."""
    return figure_path(record_path, "allocation", out_dir), figure_path(record_path, "summary", out_dir, ".md")


def figure_path(record_path: str | Path, name: str, out_dir: str | Path | None = None, suffix: str = ".png") -> Path:
    """RUN.<name>.png next to the record, or in ``out_dir``."""
    p = Path(record_path)
    stem = p.with_suffix("") if p.suffix == ".json" else p
    folder = Path(out_dir) if out_dir is not None else stem.parent
    return folder / f"{stem.name}.{name}{suffix}"


def ablation_path(record_path: str | Path, out_dir: str | Path | None = None) -> Path:
    """The ablation heat-map next to the record (RUN.json -> RUN.ablation.png), or in ``out_dir``."""
    return figure_path(record_path, "ablation", out_dir)


def _value(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    if isinstance(v, int):
        return str(v)
    return f"{v:.4f}" if abs(v) < 1e4 else f"{v:.4g}"


def score_rows(test: dict | None) -> list[tuple[str, str, str]]:
    """(metric, value, direction) for every score: known keys in DIRECTIONS order, then the rest ('?')."""
    test = test or {}
    known = [k for k in DIRECTIONS if k in test]
    other = sorted(k for k in test if k not in DIRECTIONS)
    return [(k, _value(test[k]), DIRECTIONS.get(k, "?")) for k in known + other]


def _config_line(record: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in record["config"].items() if v is not None)


def _header(record: dict) -> list[str]:
    ds = record["dataset"]
    lines = [f"status: {record['status']}" + (f" ({record['error']})" if record.get("error") else "")]
    lines.append(f"dataset: {ds.get('name', '?')} ({ds.get('n_train', '?')} train / "
                 f"{ds.get('n_test', '?')} test)")
    lines.append(f"config: {_config_line(record)}")
    dynamics = record.get("routing_dynamics")  # moe.scoring.saturation
    if dynamics and dynamics.get("undefined"):
        lines.append(f"router saturation: {dynamics['undefined']}")
    elif dynamics:
        curve = ", ".join("–" if v is None else f"{v:.2f}" for v in dynamics["router_saturation"])
        lines.append(f"router saturation per epoch (validation, k={dynamics['k']}, against epoch "
                     f"{dynamics['reference_epoch']}): {curve}; saturation_epoch {dynamics['saturation_epoch']}")
    timing = record.get("timing") or {}
    if timing:
        lines.append("timing: " + ", ".join(f"{k}={v:.3g}" if isinstance(v, (int, float)) else f"{k}={v}"
                                            for k, v in timing.items()))
    return lines


def format_scores(record: dict) -> str:
    """The printed report: a header (status, dataset, config, timing), then the aligned score table."""
    rows = [("metric", "value", "better")] + score_rows(record["test"])
    w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
    table = [f"{m:<{w0}}  {v:>{w1}}  {d}" for m, v, d in rows]
    table.insert(1, "-" * len(table[0]))
    if len(rows) == 1:
        table.append("(no test scores)")
    return "\n".join(_header(record) + [""] + table)


def summary_markdown(record: dict, title: str, image_name: str | None, ablation_image: str | None = None) -> str:
    """A short Markdown summary: the run, the score table with directions, and the allocation."""
    lines = [f"# {title}", ""] + [f"- {line}" for line in _header(record)]
    versions = record.get("versions") or {}
    if versions:
        lines.append("- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines += ["", "## Test scores", "", "| metric | value | better |", "|---|---:|---|"]
    lines += [f"| {m} | {v} | {d} |" for m, v, d in score_rows(record["test"])]
    if image_name is not None:
        lines += ["", "## Allocation (test samples, class x expert)", "",
                  f"![allocation heat-map]({image_name})"]
        lines += [""] + _allocation_table(record)
    if ablation_image is not None:
        lines += ["", "## Ablation (expert x class: test accuracy drop when the expert is removed)", "",
                  f"rule: {record.get('ablation_rule')}", "", f"![ablation heat-map]({ablation_image})"]
    return "\n".join(lines) + "\n"


def _allocation_table(record: dict) -> list[str]:
    alloc = record["allocation"]
    names = _class_names(record)
    head = "| class | " + " | ".join(f"e{e}" for e in range(len(alloc[0]))) + " |"
    rule = "|---|" + "---:|" * len(alloc[0])
    body = [f"| {n} | " + " | ".join(_value(v) for v in row) + " |" for n, row in zip(names, alloc)]
    return [head, rule] + body


def _class_names(record: dict) -> list[str]:
    names = record["dataset"].get("class_names")
    return [str(n) for n in names] if names is not None else [str(c) for c in range(len(record["allocation"]))]


def _title(record: dict, record_path: str | Path) -> str:
    """'gm6: softmax[gate=linear,expert=linear,experts=4], seed 0' (``moe.records.naming.full_name``), or the file name."""
    cfg = record["config"]
    name = record["dataset"].get("name") or cfg.get("dataset")
    if name is None or not {"router", "experts", "expert"} <= cfg.keys():
        return Path(record_path).name
    seed = cfg.get("seed", record.get("seed"))
    return f"{name}: {full_name(cfg)}" + (f", seed {seed}" if seed is not None else "")


def write_report(record: dict, record_path: str | Path, out_dir: str | Path | None = None) -> tuple[Path | None, Path]:
    """Write the heat-map (when the record has an allocation) and the summary (:func:`write_outputs`)."""
    png, md, _ = write_outputs(record, record_path, out_dir)
    return png, md


def write_outputs(record: dict, record_path: str | Path,
                  out_dir: str | Path | None = None) -> tuple[Path | None, Path, list[Path]]:
    """Write the heat-map (when the record has an allocation), the other pictures the record supports and the
    summary, next to the record or in ``out_dir``; returns (heat-map or None, summary, other pictures)."""
    png, md = output_paths(record_path, out_dir)
    has_alloc = bool(record["allocation"])
    name, title = Path(record_path).name, _title(record, record_path)
    if has_alloc:
        allocation_heatmap(record["allocation"], _class_names(record), png, title=wrapped(title))
    abl = ablation_path(record_path, out_dir) if record.get("ablation") else None
    if abl is not None:
        with _field("ablation", record_path):
            ablation_heatmap(record["ablation"], _class_names(record), abl, title=f"{wrapped(title)}: ablation")
    with _field("history or views", record_path):  # shapes inside them the checks above do not reach
        figures = record_figures(record, title)
    extra = [save_png(fig, figure_path(record_path, key, out_dir)) for key, fig in figures.items()]
    heading = f"Run {name}" + (f": {title}" if title != name else "")
    text = summary_markdown(record, heading, png.name if has_alloc else None, abl.name if abl is not None else None)
    if extra:
        text += "\n## Pictures\n\n" + "\n\n".join(f"![{p.stem.rsplit('.', 1)[-1]}]({p.name})" for p in extra) + "\n"
    extra += [abl] if abl is not None else []
    atomic_write_bytes(md, text.encode("utf-8"))
    return (png if has_alloc else None), md, extra


@contextlib.contextmanager
def _field(name: str, record_path: str | Path):
    """A picture drawn from a record's field: what that field holds, when it cannot be drawn, is one RecordError
    line naming the field (the record is damaged or hand-edited), never a traceback."""
    try:
        yield
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise RecordError(f"{record_path}: not a run record ({name} cannot be drawn: {type(exc).__name__}: "
                          f"{str(exc)[:80]})") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moe.report", description=__doc__.splitlines()[0])
    parser.add_argument("record", help="run record (JSON) written by moe.training.loop")
    parser.add_argument("--out", metavar="DIR", help="write the pictures and the summary into this folder "
                        "(created if missing) instead of next to the record")
    parser.add_argument("--trace", help="a language model's routing trace (.npz) to read with its record")
    args = parser.parse_args(argv)
    if args.record.endswith(".npz") or args.trace:  # token routing: a trace, or a language model's record and trace
        return token_main(args.record, args.trace, args.out)
    try:
        record = load_record(args.record)
        png, md, extra = write_outputs(record, args.record, args.out)
    except (RecordError, OSError) as exc:
        print(f"moe.pictures.run_report: error: {exc}", file=sys.stderr)
        return 2
    print(format_scores(record))
    print()
    print(f"wrote {png}" if png is not None else "no allocation in the record: no heat-map")
    for path in extra:
        print(f"wrote {path}")
    print(f"wrote {md}")
    return 0


def token_main(path: str, trace_path: str | None, out: str | None) -> int:
    """The token-routing report (``moe.pictures.token_pictures``) of a trace file, or of a record with its trace."""
    try:
        trace_file = path if path.endswith(".npz") else trace_path
        record = None if path.endswith(".npz") else json.loads(Path(path).read_text(encoding="utf-8"))
        if record is not None and "token_scores" not in record:
            raise RecordError(f"{path}: not a language model's record (no token_scores)")
        trace = read_trace(trace_file) if trace_file else None
        stem = Path(path).name.removesuffix(".npz").removesuffix(".json")
        written = token_report(Path(out) if out else Path(path).parent, stem, trace, record)
    except (RecordError, TraceError, OSError, json.JSONDecodeError) as exc:
        print(f"moe.pictures.run_report: error: {exc}", file=sys.stderr)
        return 2
    for p in written:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
