"""The tables of a bench or robustness run, as strings: the same tables go to the terminal
(rendered with rich by the CLI) and to results.md, so the two never disagree.

They show percentages (x 100), as the paper's tables do; missing or undefined figures show as "-".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .bench import ALL
from .bench_config import REFERENCE_ENGINE
from .results import finite

AVERAGE = "Average"


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
    value = finite(value)
    return "-" if value is None else f"{100 * value:.2f}"


def signed_pct(value: float | None) -> str:
    value = finite(value)
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
    if data.get("reference"):
        rows.append((f"{name}, {REFERENCE_ENGINE} reference", data["reference"]))
        deltas.append((f"change with {data['engine']}", data["clean"], data["reference"]))
    compare = data.get("compare")
    if compare:
        other = compare["detector"]["name"]
        rows.append((f"{other} (--compare)", compare["other"]))
        deltas.append((f"delta vs {other}", data["clean"], compare["other"]))
    families = "; ".join(f"{f or 'all'}: {', '.join(s['title'] for s in m)}" for f, m in _family_groups(data, subsets))

    def figures(pass_data: dict[str, Any], metric: str) -> list[float | None]:
        by_key = {s["key"]: s["metrics"].get(metric) for s in pass_data["subsets"]}
        return [finite(by_key.get(s["key"])) for s in subsets] + [finite(pass_data["means"][ALL][metric])]

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


def engine_table(data: dict[str, Any]) -> TextTable | None:
    """How far the metrics moved with a reduced-precision engine, against the fp32 torch reference."""
    if not data.get("reference"):
        return None
    return _delta_table(
        f"Engine check: {data['engine']} against {REFERENCE_ENGINE}",
        data,
        data["clean"],
        data["reference"],
        data["engine_delta"],
        (data["engine"], REFERENCE_ENGINE),
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
    tables = (subset_table(data), reencode_table(data), engine_table(data), compare_table(data))
    return [t for t in tables if t is not None]


def suite_label(data: dict[str, Any]) -> str:
    """The suite's title without the paper tables it names ("UnivFD test sets (Tables 1 and 2)" ->
    "UnivFD test sets"): a robustness sweep reproduces Figure 4, not those tables."""
    return re.sub(r"\s*\(Tables? [^)]*\)", "", data["suite"]["title"]).strip() or data["suite"]["name"]


def sweep_groups(data: dict[str, Any]) -> list[str]:
    """The families of a sweep that have means, in the suite's order."""
    means = data["levels"][0]["means"]
    return [f for f in data["suite"]["families"] if f in means]


def robustness_tables(data: dict[str, Any]) -> list[TextTable]:
    """One row per level: mAP and avg. Acc per family and on average, like Figure 4's curves."""
    groups = sweep_groups(data)
    tables = []
    for metric, label in (("ap", "mAP (%)"), ("acc_calibrated", "avg. Acc (%)")):
        table = TextTable(
            title=f"Robustness, {label}: {suite_label(data)} (Figure 4), {data['detector']['name']}",
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
