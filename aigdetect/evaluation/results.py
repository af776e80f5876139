"""The JSON-shaped results of bench and robustness runs: what results.json holds.

The tables, results.csv, results.md and the plot are built from these dicts rather than from the
result objects, so a report from another run loaded with ``--compare`` is handled exactly like the
current one. They keep raw fractions in [0, 1]; undefined values are null.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..fileio import finite, json_safe
from ..version import __version__
from .bench import (
    METRIC_KEYS,
    BenchResult,
    DetectorInfo,
    PassResult,
    Prediction,
)
from .bench_config import PIXEL_ONLY, BenchConfig
from .robustness import RobustnessResult
from .suites import Discovery, Suite

SCHEMA_VERSION = 1
UNITS = "fractions in [0, 1]; results.md and the terminal show percentages (x 100)"


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
            x, y = finite(a.get(key)), finite(b.get(key))
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
        "scores": PIXEL_ONLY,
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
        "sampling": {"max_per_class": config.max_per_class, "seed": config.seed, "protocol": config.protocol},
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
            "engine": result.engine,
            "reference": None,
            "engine_delta": None,
            "compare": None,
        }
    )
    if result.reencoded is not None:
        data["reencoded"] = pass_dict(result.reencoded)
        data["reencode_delta"] = pass_delta(data["reencoded"], clean)
    if result.reference is not None:
        data["reference"] = pass_dict(result.reference)
        data["engine_delta"] = pass_delta(clean, data["reference"])
    return json_safe(data)


def robustness_dict(result: RobustnessResult, command: str) -> dict[str, Any]:
    """results.json content of a robustness sweep: one pass per level, in sweep order."""
    data = _header("robustness", result.suite, result.discovery, result.detector, result.config, command)
    first = result.levels[0][1]
    data.update(
        {
            "notes": result.notes,
            "errors": _errors(first.predictions),
            "engine": result.engine,
            "sweep": {"blur": list(result.sweep.blur), "jpeg": list(result.sweep.jpeg), "clean": result.sweep.clean},
            "levels": [
                {"perturbation": level.kind, "level": level.value, "label": level.label, **pass_dict(res)}
                for level, res in result.levels
            ],
            "compare": None,
        }
    )
    return json_safe(data)


def load_results(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Read another run's results.json for ``--compare``.

    Raises:
        InputError: unreadable, not JSON, or not a ``kind`` report of this schema.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"`compare` {path}: cannot read it ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"`compare` {path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or data.get("kind") != kind or data.get("schema") != SCHEMA_VERSION:
        found = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise InputError(
            f"`compare` {path}: expected the results.json of an 'aigdetect {kind}' run (schema {SCHEMA_VERSION}), found {found!r}"
        )
    return data


def compare_results(data: dict[str, Any], other: dict[str, Any], path: str) -> dict[str, Any]:
    """Deltas this - other per subset and mean (bench) or per level (robustness), on the same suite.

    Raises:
        InputError: the two reports are of different suites or kinds.
    """
    if other["kind"] != data["kind"] or other["suite"]["name"] != data["suite"]["name"]:
        raise InputError(
            f"`compare` {path} is a {other['kind']} report of suite {other['suite']['name']!r}; "
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
