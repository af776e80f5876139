"""The report files of a bench or robustness run: results.json, results.csv, results.md,
predictions.csv and robustness.png.

Each file is written atomically, so readers never see half a report. JSON and CSV keep raw
fractions in [0, 1] (undefined values are null / empty); results.md shows the percentage tables.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..outputs import write_output
from .bench import ALL, METRIC_KEYS, BenchResult
from .bench_config import UNIVFD_FALLBACK, UNIVFD_MAX_SAMPLE
from .results import finite
from .robustness import RobustnessResult
from .tables import (
    AVERAGE,
    TextTable,
    bench_tables,
    family_table,
    markdown_table,
    paper_tables,
    robustness_tables,
    suite_label,
    sweep_groups,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RESULTS_JSON, RESULTS_CSV, RESULTS_MD = "results.json", "results.csv", "results.md"
PREDICTIONS_CSV, ROBUSTNESS_PNG = "predictions.csv", "robustness.png"


def _markdown(data: dict[str, Any], tables: Sequence[TextTable]) -> str:
    detector = data["detector"]
    lines = [
        f"# aigdetect {data['kind']}: {data['suite']['title']}",
        "",
        f"- detector: {detector['name']} ({detector['origin']}, backbone {detector['backbone']})",
        f"- calibrated threshold: {detector['threshold']:.4g}",
        f"- scores: {data['scores']}",
        f"- root: {data['root']}",
        f"- command: `{data['command']}`",
        f"- sampling: {_sampling_text(data['sampling'])}",
    ]
    if data.get("reencode"):
        lines.append(f"- re-encode: {data['reencode']}")
    lines.append("")
    lines += [markdown_table(t) for t in tables]
    if data["missing"]:
        lines += ["## Missing subsets", ""] + [f"- {m['title']} (folder `{m['folder']}`)" for m in data["missing"]] + [""]
    if data["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in data["notes"]] + [""]
    if data["errors"]:
        lines += [f"## Images that could not be decoded ({len(data['errors'])})", ""]
        lines += [f"- {e['subset']}: `{e['path']}`: {e['error']}" for e in data["errors"]] + [""]
    return "\n".join(lines)


def _sampling_text(sampling: dict[str, Any]) -> str:
    if sampling.get("protocol") == "univfd":
        limit = sampling["max_per_class"] or UNIVFD_MAX_SAMPLE
        return (
            f"UnivFD's validate.py protocol: {limit} images per class, {UNIVFD_FALLBACK} when a class has fewer, "
            f"seed {sampling['seed']}"
        )
    return f"{sampling['max_per_class'] or 'all'} images per class, seed {sampling['seed']}"


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else (repr(v) if isinstance(v, float) else v) for v in row])
    return buffer.getvalue()


_ROW_HEADER = ["scope", "key", "title", "family", "n_real", "n_fake", "n_errors", "threshold_calibrated", "threshold_oracle"]


def _metric_rows(pass_data: dict[str, Any], prefix: Sequence[Any]) -> list[list[Any]]:
    rows = []
    for s in pass_data["subsets"]:
        t = s["thresholds"]
        facts = [s["key"], s["title"], s["family"], s["n_real"], s["n_fake"], s["n_errors"], t["calibrated"], t["oracle"]]
        rows.append([*prefix, "subset", *facts, *(s["metrics"][k] for k in METRIC_KEYS)])
    for group, m in pass_data["means"].items():
        scope, family = ("all", None) if group == ALL else ("family", group)
        facts = [group, group, family, None, None, None, None, None]
        rows.append([*prefix, scope, *facts, *(m[k] for k in METRIC_KEYS)])
    return rows


def _write_bytes(path: Path, payload: bytes) -> None:
    """Through the output guard (atomic for a file): readers never see half a report."""
    write_output(path, lambda tmp: Path(tmp).write_bytes(payload))


def _write_text(path: Path, text: str) -> None:
    _write_bytes(path, text.encode("utf-8"))


def write_bench_report(result: BenchResult, data: dict[str, Any], out: str | os.PathLike[str]) -> list[Path]:
    """Write results.json, results.csv, results.md and predictions.csv; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    passes = [("clean", data["clean"])] + ([("reencoded", data["reencoded"])] if data["reencoded"] else [])
    rows = [row for name, p in passes for row in _metric_rows(p, [name])]
    tables = [*paper_tables(data), *(t for t in (family_table(data),) if t), *bench_tables(data)]
    prediction_header = ["subset", "path", "label", "score", "error"]
    reencoded = result.reencoded.predictions if result.reencoded else None
    if reencoded is not None:
        prediction_header.append(f"score_reencoded_{data['reencode'].replace(':', '')}")
    prediction_rows = []
    for index, p in enumerate(result.clean.predictions):
        row = [p.subset, p.path, p.label, p.score, p.error]
        if reencoded is not None:
            row.append(reencoded[index].score)
        prediction_rows.append(row)
    files = {
        RESULTS_JSON: json.dumps(data, indent=2, allow_nan=False) + "\n",
        RESULTS_CSV: _csv_text(["pass", *_ROW_HEADER, *METRIC_KEYS], rows),
        RESULTS_MD: _markdown(data, tables),
        PREDICTIONS_CSV: _csv_text(prediction_header, prediction_rows),
    }
    for name, text in files.items():
        _write_text(out / name, text)
    return [out / name for name in files]


def write_robustness_report(result: RobustnessResult, data: dict[str, Any], out: str | os.PathLike[str]) -> list[Path]:
    """Write results.json, results.csv, results.md, predictions.csv and robustness.png."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [row for lvl in data["levels"] for row in _metric_rows(lvl, [lvl["perturbation"], lvl["level"]])]
    prediction_rows = [
        [p.subset, p.path, p.label, level.kind, level.value, p.score, p.error]
        for level, res in result.levels
        for p in res.predictions
    ]
    files = {
        RESULTS_JSON: json.dumps(data, indent=2, allow_nan=False) + "\n",
        RESULTS_CSV: _csv_text(["perturbation", "level", *_ROW_HEADER, *METRIC_KEYS], rows),
        RESULTS_MD: _markdown(data, robustness_tables(data)),
        PREDICTIONS_CSV: _csv_text(["subset", "path", "label", "perturbation", "level", "score", "error"], prediction_rows),
    }
    for name, text in files.items():
        _write_text(out / name, text)
    _write_bytes(out / ROBUSTNESS_PNG, robustness_png(data))
    return [out / name for name in [*files, ROBUSTNESS_PNG]]


def robustness_png(data: dict[str, Any]) -> bytes:
    """``robustness_figure`` as PNG bytes."""
    buffer = io.BytesIO()
    robustness_figure(data).savefig(buffer, format="png")
    return buffer.getvalue()


def robustness_figure(data: dict[str, Any]) -> Figure:
    """Figure 4's layout: mAP against level, one panel per perturbation, a line per family plus the average.

    Both panels share one y range, so that a 5-point dip under JPEG and a 40-point fall under blur
    look their size. Family lines are drawn wide and solid with their own markers; the average is a
    narrow dashed black line on top, so a family that coincides with it (a suite with one family)
    still shows around and between its dashes. Drawn on an Agg canvas without pyplot (no global
    backend state); matplotlib is imported here so that every other command starts without it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = sweep_groups(data)
    clean = [lvl for lvl in data["levels"] if lvl["perturbation"] == "clean"]
    panels = [
        (kind, title, clean + [lvl for lvl in data["levels"] if lvl["perturbation"] == kind])
        for kind, title in (("blur", "Gaussian blur"), ("jpeg", "JPEG compression"))
        if any(lvl["perturbation"] == kind for lvl in data["levels"])
    ]
    figure = Figure(figsize=(5.5 * len(panels), 4.4), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False, sharey=True)[0]
    shown: list[float] = []
    for axis, (kind, title, levels) in zip(axes, panels):
        positions = list(range(len(levels)))
        labels = ["none" if lvl["perturbation"] == "clean" else f"{lvl['level']:g}" for lvl in levels]
        for index, group in enumerate([*groups, ALL]):
            values = [finite(lvl["means"][group]["ap"]) for lvl in levels]
            ys = [math.nan if v is None else 100 * v for v in values]
            shown += [y for y in ys if not math.isnan(y)]
            if group == ALL:
                style: dict[str, Any] = {"color": "black", "linewidth": 1.5, "linestyle": "--", "marker": "x", "zorder": 3}
            else:
                style = {"linewidth": 2.5, "marker": _MARKERS[index % len(_MARKERS)], "zorder": 2}
            axis.plot(positions, ys, label=AVERAGE if group == ALL else group, **style)
        axis.set_xticks(positions, labels)
        axis.set_xlabel("sigma" if kind == "blur" else "quality")
        axis.grid(True, alpha=0.3)
        axis.set_title(title)
    axes[0].set_ylabel("mAP (%)")
    axes[0].set_ylim(*_shared_range(shown))
    axes[0].legend(fontsize=8)
    figure.suptitle(f"Robustness (Figure 4): {suite_label(data)}, {data['detector']['name']}", fontsize=10)
    figure.tight_layout()
    return figure


_MARKERS = ("o", "s", "^", "D", "v", "P", "*")


def _shared_range(values: Sequence[float]) -> tuple[float, float]:
    """One y range for every panel: the data padded by 5 % of its span (at least 1 point), within 0-100."""
    if not values:
        return 0.0, 100.0
    low, high = min(values), max(values)
    pad = max(1.0, 0.05 * (high - low))
    return max(0.0, low - pad), min(100.0, high + pad)
