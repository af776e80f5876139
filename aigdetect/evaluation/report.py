"""Bench and robustness reports: results.json / results.csv / results.md / predictions.csv and
robustness.png, plus the tables the terminal shows.

Everything is built from the JSON-shaped dict (``bench_dict`` / ``robustness_dict``), so a report
from another run loaded with ``--compare`` is handled exactly like the current one. JSON and CSV
keep raw fractions in [0, 1] (undefined values are null / empty); the markdown and terminal tables
show percentages (x 100), as the paper's tables do.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__
from ..errors import InputError
from ..models.checkpoint import atomic_write
from .bench import ALL, METRIC_KEYS, BenchConfig, BenchResult, DetectorInfo, PassResult, Prediction
from .robustness import RobustnessResult
from .suites import Discovery, Suite

SCHEMA_VERSION = 1
UNITS = "fractions in [0, 1]; results.md and the terminal show percentages (x 100)"
RESULTS_JSON, RESULTS_CSV, RESULTS_MD = "results.json", "results.csv", "results.md"
PREDICTIONS_CSV, ROBUSTNESS_PNG = "predictions.csv", "robustness.png"
AVERAGE = "Average"


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _json_safe(value: Any) -> Any:
    """NaN and infinities become null, so results.json is strict JSON."""
    if isinstance(value, float):
        return _finite(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def pass_dict(result: PassResult) -> dict[str, Any]:
    subsets = [
        {
            "key": s.key,
            "title": s.title,
            "family": s.family,
            "location": s.location,
            "n_real": s.n_real,
            "n_fake": s.n_fake,
            "n_errors": s.n_errors,
            "thresholds": s.thresholds,
            "metrics": s.metrics,
        }
        for s in result.subsets
    ]
    return {"subsets": subsets, "means": result.means}


def pass_delta(this: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """this - other for every metric of every subset and mean the two passes share."""

    def diff(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float | None]:
        out = {}
        for key in METRIC_KEYS:
            x, y = _finite(a.get(key)), _finite(b.get(key))
            out[key] = None if x is None or y is None else x - y
        return out

    theirs = {s["key"]: s for s in other["subsets"]}
    ours = {s["key"]: s for s in this["subsets"]}
    return {
        "subsets": {k: diff(s["metrics"], theirs[k]["metrics"]) for k, s in ours.items() if k in theirs},
        "means": {g: diff(m, other["means"][g]) for g, m in this["means"].items() if g in other["means"]},
        "only_here": [k for k in ours if k not in theirs],
        "only_there": [k for k in theirs if k not in ours],
    }


def _header(
    kind: str, suite: Suite, discovery: Discovery, detector: DetectorInfo, config: BenchConfig, command: str
) -> dict[str, Any]:
    return {
        "kind": kind,
        "schema": SCHEMA_VERSION,
        "aigdetect_version": __version__,
        "units": UNITS,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "suite": {"name": suite.name, "title": suite.title, "families": list(suite.families)},
        "root": discovery.root,
        "detector": {
            "name": detector.name,
            "origin": detector.origin,
            "backbone": detector.backbone,
            "threshold": detector.threshold,
        },
        "threshold": detector.threshold,
        "sampling": {"max_per_class": config.max_per_class, "seed": config.seed},
        "reencode": config.reencode.label if config.reencode else None,
        "missing": [{"key": s.key, "title": s.title, "folder": s.folders[0]} for s in discovery.missing],
    }


def _errors(predictions: Iterable[Prediction]) -> list[dict[str, Any]]:
    return [{"subset": p.subset, "path": p.path, "label": p.label, "error": p.error} for p in predictions if p.error]


def bench_dict(result: BenchResult, command: str) -> dict[str, Any]:
    """results.json content of a bench run (before ``--compare`` adds its deltas)."""
    data = _header("bench", result.suite, result.discovery, result.detector, result.config, command)
    clean = pass_dict(result.clean)
    data.update(
        {
            "notes": result.notes,
            "errors": _errors(result.clean.predictions),
            "clean": clean,
            "reencoded": None,
            "reencode_delta": None,
            "compare": None,
        }
    )
    if result.reencoded is not None:
        data["reencoded"] = pass_dict(result.reencoded)
        data["reencode_delta"] = pass_delta(data["reencoded"], clean)
    return _json_safe(data)


def robustness_dict(result: RobustnessResult, command: str) -> dict[str, Any]:
    """results.json content of a robustness sweep: one pass per level, in sweep order."""
    data = _header("robustness", result.suite, result.discovery, result.detector, result.config, command)
    first = result.levels[0][1]
    data.update(
        {
            "notes": result.notes,
            "errors": _errors(first.predictions),
            "sweep": {"blur": list(result.sweep.blur), "jpeg": list(result.sweep.jpeg), "clean": result.sweep.clean},
            "levels": [
                {"perturbation": level.kind, "level": level.value, "label": level.label, **pass_dict(res)}
                for level, res in result.levels
            ],
            "compare": None,
        }
    )
    return _json_safe(data)


def load_results(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read another run's results.json for ``--compare``.

    Raises:
        InputError: unreadable, not JSON, or not a ``kind`` report of this schema.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"--compare {path}: cannot read it ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"--compare {path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != kind or data.get("schema") != SCHEMA_VERSION:
        found = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise InputError(
            f"--compare {path}: expected the results.json of an 'aigdetect {kind}' run (schema {SCHEMA_VERSION}), found {found!r}"
        )
    return data


def compare_results(data: dict[str, Any], other: dict[str, Any], path: str) -> dict[str, Any]:
    """Deltas this - other per subset and mean (bench) or per level (robustness), on the same suite.

    Raises:
        InputError: the two reports are of different suites or kinds.
    """
    if other["kind"] != data["kind"] or other["suite"]["name"] != data["suite"]["name"]:
        raise InputError(
            f"--compare {path} is a {other['kind']} report of suite {other['suite']['name']!r}; "
            f"this run is {data['kind']} {data['suite']['name']!r}"
        )
    compared: dict[str, Any] = {"path": str(path), "detector": other["detector"], "command": other.get("command")}
    if data["kind"] == "bench":
        compared["other"] = other["clean"]
        compared["delta"] = pass_delta(data["clean"], other["clean"])
    else:
        theirs = {lvl["label"]: lvl for lvl in other["levels"]}
        compared["levels"] = [
            {"label": lvl["label"], "other_means": theirs[lvl["label"]]["means"], "delta": pass_delta(lvl, theirs[lvl["label"]])}
            for lvl in data["levels"]
            if lvl["label"] in theirs
        ]
    return compared


@dataclass
class TextTable:
    """A table as strings, rendered to markdown here and with rich by the CLI."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    section_ends: set[int] = field(default_factory=set)
    bold_rows: set[int] = field(default_factory=set)
    caption: str = ""

    def add(self, row: Sequence[str], *, bold: bool = False, end_section: bool = False) -> None:
        if bold:
            self.bold_rows.add(len(self.rows))
        if end_section:
            self.section_ends.add(len(self.rows))
        self.rows.append(list(row))


def pct(value: float | None) -> str:
    value = _finite(value)
    return "-" if value is None else f"{100 * value:.2f}"


def signed_pct(value: float | None) -> str:
    value = _finite(value)
    return "-" if value is None else f"{100 * value:+.2f}"


def _family_groups(data: dict[str, Any], subsets: list[dict[str, Any]]) -> list[tuple[str | None, list[dict[str, Any]]]]:
    families = data["suite"]["families"]
    if len(families) < 2:
        return [(None, subsets)]
    return [(f, [s for s in subsets if s["family"] == f]) for f in families if any(s["family"] == f for s in subsets)]


def _threshold_caption(data: dict[str, Any]) -> str:
    return f"calibrated threshold {data['threshold']:.4g} (score above it = fake)"


def subset_table(data: dict[str, Any]) -> TextTable:
    """Per-subset figures grouped by family with family means and the total: the terminal's table."""
    clean = data["clean"]
    unequal = any(s["n_real"] != s["n_fake"] for s in clean["subsets"])
    table = TextTable(
        title=f"{data['suite']['title']}: {data['detector']['name']}",
        columns=["Subset", "Real/fake", "AP", "Acc", "Real", "Fake", "Acc@0.5", "Oracle", *(["Bal."] if unequal else [])],
        caption=f"Images scored (real/fake). Acc, Real, Fake: accuracy at the {_threshold_caption(data)}; "
        "Acc@0.5 at 0.5; Oracle at the best threshold chosen with the test labels"
        + ("; Bal.: balanced accuracy where the counts differ" if unequal else "")
        + "; all in %.",
    )

    def row(name: str, figures: dict[str, Any], counts: str, balanced: bool) -> list[str]:
        cells = [
            name,
            counts,
            pct(figures["ap"]),
            pct(figures["acc_calibrated"]),
            pct(figures["real_acc_calibrated"]),
            pct(figures["fake_acc_calibrated"]),
            pct(figures["acc_0.5"]),
            pct(figures["acc_oracle"]),
        ]
        return cells + ([pct(figures["balanced_acc_calibrated"]) if balanced else ""] if unequal else [])

    groups = _family_groups(data, clean["subsets"])
    for family, members in groups:
        for s in members:
            table.add(row(s["title"], s["metrics"], f"{s['n_real']}/{s['n_fake']}", s["n_real"] != s["n_fake"]))
        if family is not None:
            table.add(row(f"{family} mean", clean["means"][family], "", False), bold=True, end_section=True)
        else:
            table.section_ends.add(len(table.rows) - 1)
    if len(clean["subsets"]) > 1 or groups[0][0] is not None:
        table.add(row(f"Total mean ({len(clean['subsets'])} subsets)", clean["means"][ALL], "", False), bold=True)
    return table


def paper_tables(data: dict[str, Any]) -> list[TextTable]:
    """Tables shaped like the paper's Tables 1-3: one row per detector, one column per subset.

    With ``--reencode`` a row for the re-encoded pass and its change follow; with ``--compare``
    a row for the other detector and the delta (this - other).
    """
    subsets = data["clean"]["subsets"]
    name = data["detector"]["name"]
    rows: list[tuple[str, dict[str, Any]]] = [(name, data["clean"])]
    deltas: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    if data.get("reencoded"):
        rows.append((f"{name}, re-encoded {data['reencode']}", data["reencoded"]))
        deltas.append(("change after re-encoding", data["reencoded"], data["clean"]))
    compare = data.get("compare")
    if compare:
        other = compare["detector"]["name"]
        rows.append((f"{other} (--compare)", compare["other"]))
        deltas.append((f"delta vs {other}", data["clean"], compare["other"]))
    families = "; ".join(f"{f or 'all'}: {', '.join(s['title'] for s in m)}" for f, m in _family_groups(data, subsets))

    def figures(pass_data: dict[str, Any], metric: str) -> list[float | None]:
        by_key = {s["key"]: s["metrics"].get(metric) for s in pass_data["subsets"]}
        return [_finite(by_key.get(s["key"])) for s in subsets] + [_finite(pass_data["means"][ALL][metric])]

    tables = []
    for metric, label, total in (("ap", "AP (%)", "mAP"), ("acc_calibrated", "Acc (%)", "avg. Acc")):
        caption = f"Families: {families}." + (f" Acc at the {_threshold_caption(data)}." if metric != "ap" else "")
        columns = ["Method", *(s["title"] for s in subsets), total]
        table = TextTable(f"{label}, {data['suite']['title']}", columns, caption=caption)
        for row_name, pass_data in rows:
            table.add([row_name, *(pct(v) for v in figures(pass_data, metric))])
        for row_name, minuend, subtrahend in deltas:
            pairs = zip(figures(minuend, metric), figures(subtrahend, metric))
            table.add([row_name, *(signed_pct(None if a is None or b is None else a - b) for a, b in pairs)], bold=True)
        tables.append(table)
    return tables


def family_table(data: dict[str, Any]) -> TextTable | None:
    """Means over each family and over all subsets, as the paper quotes them in its text."""
    means = data["clean"]["means"]
    groups = [g for g in data["suite"]["families"] if g in means]
    if not groups:
        return None
    table = TextTable(
        title="Family means (%)",
        columns=["Family", "Subsets", "mAP", "avg. Acc", "avg. Acc@0.5", "avg. oracle Acc", "avg. Bal. acc"],
        caption=f"avg. Acc and avg. Bal. acc at the {_threshold_caption(data)}.",
    )
    for group in [*groups, ALL]:
        m = means[group]
        table.add(
            [
                "Total" if group == ALL else group,
                str(int(m["n_subsets"] or 0)),
                pct(m["ap"]),
                pct(m["acc_calibrated"]),
                pct(m["acc_0.5"]),
                pct(m["acc_oracle"]),
                pct(m["balanced_acc_calibrated"]),
            ],
            bold=group == ALL,
        )
    return table


def _delta_table(
    title: str, data: dict[str, Any], here: dict[str, Any], there: dict[str, Any], delta: dict[str, Any], labels: tuple[str, str]
) -> TextTable:
    """Side by side: AP and Acc of two passes per subset and mean, with their difference."""
    table = TextTable(
        title=title,
        columns=["Subset", "AP", f"AP {labels[1]}", "delta", "Acc", f"Acc {labels[1]}", "delta"],
        caption=f"Percentages; AP and Acc: {labels[0]}; delta = {labels[0]} - {labels[1]}; "
        f"Acc at the {_threshold_caption(data)}.",
    )
    theirs = {s["key"]: s["metrics"] for s in there["subsets"]}

    def row(name: str, a: dict[str, Any], b: dict[str, Any], d: dict[str, Any]) -> list[str]:
        return [
            name,
            pct(a.get("ap")),
            pct(b.get("ap")),
            signed_pct(d.get("ap")),
            pct(a.get("acc_calibrated")),
            pct(b.get("acc_calibrated")),
            signed_pct(d.get("acc_calibrated")),
        ]

    for s in here["subsets"]:
        if s["key"] in delta["subsets"]:
            table.add(row(s["title"], s["metrics"], theirs[s["key"]], delta["subsets"][s["key"]]))
    if table.rows:
        table.section_ends.add(len(table.rows) - 1)
    for group, d in delta["means"].items():
        if group == ALL:
            continue
        table.add(row(f"{group} mean", here["means"][group], there["means"][group], d))
    if ALL in delta["means"]:
        table.add(row("Total mean", here["means"][ALL], there["means"][ALL], delta["means"][ALL]), bold=True)
    return table


def reencode_table(data: dict[str, Any]) -> TextTable | None:
    """The format-bias check: each subset scored as stored and after ``--reencode``."""
    if not data.get("reencoded"):
        return None
    return _delta_table(
        f"Format-bias check: --reencode {data['reencode']}",
        data,
        data["reencoded"],
        data["clean"],
        data["reencode_delta"],
        ("re-encoded", "stored"),
    )


def compare_table(data: dict[str, Any]) -> TextTable | None:
    compare = data.get("compare")
    if not compare or data["kind"] != "bench":
        return None
    return _delta_table(
        f"Compared with {compare['detector']['name']} ({compare['path']})",
        data,
        data["clean"],
        compare["other"],
        compare["delta"],
        ("this run", "other"),
    )


def bench_tables(data: dict[str, Any]) -> list[TextTable]:
    """What the terminal shows for a bench run, in order."""
    return [t for t in (subset_table(data), reencode_table(data), compare_table(data)) if t is not None]


def _sweep_groups(data: dict[str, Any]) -> list[str]:
    means = data["levels"][0]["means"]
    return [f for f in data["suite"]["families"] if f in means]


def robustness_tables(data: dict[str, Any]) -> list[TextTable]:
    """One row per level: mAP and avg. Acc per family and on average, like Figure 4's curves."""
    groups = _sweep_groups(data)
    tables = []
    for metric, label in (("ap", "mAP (%)"), ("acc_calibrated", "avg. Acc (%)")):
        table = TextTable(
            title=f"Robustness, {label}: {data['suite']['title']}, {data['detector']['name']}",
            columns=["Level", *groups, AVERAGE],
            caption="Average = mean over all subsets." + (f" Acc at the {_threshold_caption(data)}." if metric != "ap" else ""),
        )
        for lvl in data["levels"]:
            table.add([lvl["label"], *(pct(lvl["means"][g][metric]) for g in groups), pct(lvl["means"][ALL][metric])])
        tables.append(table)
    compare = data.get("compare")
    if compare:
        table = TextTable(
            title=f"Compared with {compare['detector']['name']} ({compare['path']})",
            columns=["Level", "mAP", "other mAP", "delta", "avg. Acc", "other avg. Acc", "delta"],
            caption="Percentages over all subsets: this run, the --compare run, and this - other.",
        )
        ours = {lvl["label"]: lvl for lvl in data["levels"]}
        for entry in compare["levels"]:
            here, there, d = ours[entry["label"]]["means"][ALL], entry["other_means"][ALL], entry["delta"]["means"].get(ALL, {})
            table.add(
                [
                    entry["label"],
                    pct(here["ap"]),
                    pct(there["ap"]),
                    signed_pct(d.get("ap")),
                    pct(here["acc_calibrated"]),
                    pct(there["acc_calibrated"]),
                    signed_pct(d.get("acc_calibrated")),
                ]
            )
        tables.append(table)
    return tables


def markdown_table(table: TextTable) -> str:
    def cell(text: str, bold: bool) -> str:
        text = text.replace("|", "\\|")
        return f"**{text}**" if bold and text else text

    lines = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for index, row in enumerate(table.rows):
        lines.append("| " + " | ".join(cell(c, index in table.bold_rows) for c in row) + " |")
    if table.caption:
        lines += ["", table.caption]
    return "\n".join(lines) + "\n"


def _markdown(data: dict[str, Any], tables: Sequence[TextTable]) -> str:
    detector = data["detector"]
    lines = [
        f"# aigdetect {data['kind']}: {data['suite']['title']}",
        "",
        f"- detector: {detector['name']} ({detector['origin']}, backbone {detector['backbone']})",
        f"- calibrated threshold: {detector['threshold']:.4g}",
        f"- root: {data['root']}",
        f"- command: `{data['command']}`",
        f"- sampling: {data['sampling']['max_per_class'] or 'all'} images per class, seed {data['sampling']['seed']}",
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
    """Atomic write: readers never see half a report."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(payload))


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
    """Figure 4's layout: mAP against level, one panel per perturbation, a line per family plus the average.

    Drawn on an Agg canvas without pyplot (no global backend state); matplotlib is imported here
    so that every other command starts without it.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = _sweep_groups(data)
    clean = [lvl for lvl in data["levels"] if lvl["perturbation"] == "clean"]
    panels = [
        (kind, title, clean + [lvl for lvl in data["levels"] if lvl["perturbation"] == kind])
        for kind, title in (("blur", "Gaussian blur"), ("jpeg", "JPEG compression"))
        if any(lvl["perturbation"] == kind for lvl in data["levels"])
    ]
    figure = Figure(figsize=(5.5 * len(panels), 4.2), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for axis, (kind, title, levels) in zip(axes, panels):
        positions = list(range(len(levels)))
        labels = ["none" if lvl["perturbation"] == "clean" else f"{lvl['level']:g}" for lvl in levels]
        for group in [*groups, ALL]:
            values = [_finite(lvl["means"][group]["ap"]) for lvl in levels]
            ys = [math.nan if v is None else 100 * v for v in values]
            style: dict[str, Any] = {"marker": "o", "linewidth": 1.5}
            if group == ALL:
                style.update(color="black", linewidth=2.5)
            axis.plot(positions, ys, label=AVERAGE if group == ALL else group, **style)
        axis.set_xticks(positions, labels)
        axis.set_xlabel("sigma" if kind == "blur" else "quality")
        axis.set_ylabel("mAP (%)")
        axis.grid(True, alpha=0.3)
        axis.set_title(title)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{data['suite']['title']}: {data['detector']['name']}", fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()

