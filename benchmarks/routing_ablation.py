"""Routing ablation: the paper's linear router against the prototype router, with and without a CLS expert,
and with each way of scaling a chosen expert (``identity``: the raw cosine, ProMoE's released code;
``softmax``: softmax(cos / tau), this project's first prototype router).

Every variant trains on the same images with the same seeds and the same optimisation settings;
only the router differs. Each trained detector is then scored on a held-out test set and reported
with the bench metrics (``aigdetect.metrics``): AP, accuracy at 0.5 and at the threshold
that training calibrated on validation.

Synthetic data (the default) is written by ``aigdetect.data.synthetic``: a training root with its own
val split, and a test root drawn with another seed. On the tiny random-weight backbone this runs on
a laptop CPU in a few minutes:

    python benchmarks/routing_ablation.py --seeds 0,1,2

Real data: a training root (any layout ``aigdetect train`` reads), optionally ``--val`` and ``--test``
roots, and a real backbone:

    python benchmarks/routing_ablation.py --data DIR --val VAL --test TEST --model vitl14 \\
        --backbone-weights ViT-L-14.pt --steps 2000 --batch-size 64 --device cuda

Without ``--test`` the validation set is scored, which is optimistic: training chose its best step
and threshold on it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from aigdetect import load_detector
from aigdetect.data.layouts import detect_layout
from aigdetect.data.synthetic import write_synthetic_dataset
from aigdetect.engine.infer import resolve_device, score_files
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.metrics import accuracy, average_precision
from aigdetect.models.config import MoLEConfig
from aigdetect.models.detector import Detector
from aigdetect.progress import ProgressEvent
from aigdetect.training.config import TrainConfig
from aigdetect.training.train import train

TINY_MODEL = Path(__file__).resolve().parents[1] / "tests" / "assets" / "tiny.json"


@dataclass(frozen=True)
class Variant:
    name: str
    router: str
    cls_expert: bool
    gate_weight: str | None = None


VARIANTS = (
    Variant("linear", "linear", False),
    Variant("proto", "proto", False, "identity"),
    Variant("proto-softmax", "proto", False, "softmax"),
    Variant("proto+cls", "proto", True, "identity"),
    Variant("proto+cls-softmax", "proto", True, "softmax"),
)
DEFAULT_VARIANTS = ("linear", "proto", "proto-softmax", "proto+cls")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    data = parser.add_argument_group("data (default: a generated synthetic set)")
    data.add_argument("--data", type=Path, help="training root; omit to generate the synthetic set")
    data.add_argument("--val", type=Path, help="validation root (default: the layout's val split or a held-out 10%%)")
    data.add_argument("--test", type=Path, help="test root scored after training (default: the validation set)")
    data.add_argument("--per-class", type=int, default=64, help="synthetic training images per class")
    data.add_argument("--val-per-class", type=int, default=32, help="synthetic validation images per class")
    data.add_argument("--test-per-class", type=int, default=48, help="synthetic test images per class")
    data.add_argument("--image-size", type=int, default=64, help="side of the synthetic images")
    data.add_argument("--strength", type=float, default=0.15, help="contrast of the synthetic upsampling artifact")
    data.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic images")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=str(TINY_MODEL), help="backbone name or open_clip config JSON")
    model.add_argument("--backbone-weights", default=None, help="weights file, or 'none' (default 'none' for the tiny model)")
    model.add_argument("--blocks", type=int, default=3)
    model.add_argument("--expert-ranks", default="4,8,16")
    model.add_argument("--top-k", type=int, default=1)
    model.add_argument("--rcl-weight", type=float, default=1.0)
    model.add_argument("--rcl-temperature", type=float, default=0.07)
    run = parser.add_argument_group("optimisation")
    run.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds; every variant runs each")
    run.add_argument("--steps", type=int, default=500)
    run.add_argument("--batch-size", type=int, default=32)
    run.add_argument("--lr", type=float, default=3e-3, help="3e-3 suits the tiny backbone; the paper uses 6e-4")
    run.add_argument("--eval-every", type=int, default=50)
    run.add_argument("--device", default="auto")
    run.add_argument("--workers", type=int, default=0)
    run.add_argument(
        "--variants", default=",".join(DEFAULT_VARIANTS), help=f"variants to run, of {', '.join(v.name for v in VARIANTS)}"
    )
    parser.add_argument("--work", type=Path, help="folder for data, checkpoints and logs (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="also write every run and the summary here")
    args = parser.parse_args(argv)
    if args.backbone_weights is None and Path(args.model) == TINY_MODEL:
        args.backbone_weights = "none"
    return args


def labelled_files(root: Path) -> tuple[list[Path], np.ndarray]:
    """Every image of every split under a layout root, with its label."""
    samples = [s for split in detect_layout(root).splits.values() for s in split]
    return [s.path for s in samples], np.array([s.label for s in samples], dtype=np.int64)


def score(detector: Detector, paths: list[Path], device: str, workers: int) -> np.ndarray:
    scores = np.full(len(paths), np.nan)
    for batch in score_files(detector, paths, device=resolve_device(device), workers=workers):
        for record in batch:
            if record.ok:
                scores[record.index] = record.score
    return scores


def run_variant(variant: Variant, seed: int, args: argparse.Namespace, data: dict[str, Any], work: Path) -> dict[str, Any]:
    mole = MoLEConfig(
        blocks=args.blocks,
        expert_ranks=tuple(int(r) for r in args.expert_ranks.split(",")),
        top_k=args.top_k,
        router=variant.router,
        gate_weight=variant.gate_weight,
        rcl_weight=args.rcl_weight,
        rcl_temperature=args.rcl_temperature,
        cls_expert=variant.cls_expert,
    )
    out = work / "runs" / f"{variant.name}-seed{seed}.safetensors"
    config = TrainConfig(
        out=str(out), data=str(data["train"]), val=str(data["val"]) if data["val"] else None, model=args.model,
        backbone_weights=args.backbone_weights, mole=mole, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, eval_every=args.eval_every, patience=0, log_every=max(1, args.eval_every), seed=seed,
        runtime=RuntimeConfig(device=args.device, workers=args.workers), log=str(out.with_suffix(".jsonl")),
    )
    routing: dict[str, dict] = {}

    def on_event(event: ProgressEvent) -> None:
        if event.stage == "step" and event.detail.get("routing"):
            routing.clear()
            routing.update(event.detail["routing"])

    started = time.perf_counter()
    result = train(config, on_event)
    seconds = time.perf_counter() - started
    # 'none' must not reach the loader: it would replace the checkpoint's embedded backbone by fresh
    # random weights of another seed. Random backbones are always embedded, so nothing is needed.
    weights = None if args.backbone_weights == "none" else args.backbone_weights
    detector = load_detector(out, backbone_weights=weights)
    scores = score(detector, data["test_paths"], args.device, args.workers)
    labels, ok = data["test_labels"], ~np.isnan(scores)
    at_half = accuracy(labels[ok], scores[ok], 0.5)
    at_threshold = accuracy(labels[ok], scores[ok], detector.threshold)
    entropies = [block["entropy"] for block in routing.values()]
    return {
        "variant": variant.name,
        "seed": seed,
        "val_ap": result.val_ap,
        "best_step": result.best_step,
        "test_ap": average_precision(labels[ok], scores[ok]),
        "test_acc_0.5": at_half.overall,
        "test_acc_threshold": at_threshold.overall,
        "test_acc_threshold_real": at_threshold.real,
        "test_acc_threshold_fake": at_threshold.fake,
        "threshold": detector.threshold,
        "unscored": int((~ok).sum()),
        "routing_entropy": float(np.mean(entropies)) if entropies else None,
        "routing_gap": routing_gap(routing),
        "last_routing": routing,
        "train_seconds": seconds,
    }


def routing_gap(routing: dict[str, dict]) -> float | None:
    """How differently reals and fakes are routed: total variation between their expert shares,
    averaged over blocks (0: same spread, 1: disjoint experts), from one logged training batch."""
    gaps = [
        0.5 * sum(abs(r - f) for r, f in zip(block["share_real"], block["share_fake"]))
        for block in routing.values()
        if block.get("share_real") and None not in block["share_real"] + block["share_fake"]
    ]
    return float(np.mean(gaps)) if gaps else None


def prepare_data(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    if args.data is None:
        train_root = work / "data" / "train"
        test_root = work / "data" / "test"
        write_synthetic_dataset(train_root, "wang2020", per_class=args.per_class, size=args.image_size,
                                seed=args.data_seed, val_per_class=args.val_per_class, strength=args.strength)
        write_synthetic_dataset(test_root, "plain", per_class=args.test_per_class, size=args.image_size,
                                seed=args.data_seed + 1, strength=args.strength)
        val_root = None
        source = (f"synthetic: {args.per_class}/class train, {args.val_per_class}/class val, "
                  f"{args.test_per_class}/class test, strength {args.strength}, "
                  f"{args.image_size} px, data seed {args.data_seed}")
    else:
        train_root, val_root, test_root = args.data, args.val, args.test
        source = f"train {args.data}" + (f", val {args.val}" if args.val else "") + (f", test {args.test}" if args.test else "")
    if test_root is None:
        layout = detect_layout(val_root or train_root)
        if val_root is None and "val" not in layout.splits:
            sys.exit("error: without --val or a val split there is no held-out set to score; pass --test DIR")
        split = layout.splits["val"] if "val" in layout.splits else [s for v in layout.splits.values() for s in v]
        paths, labels = [s.path for s in split], np.array([s.label for s in split], dtype=np.int64)
        source += " (scored on the validation set)"
    else:
        paths, labels = labelled_files(test_root)
    return {"train": train_root, "val": val_root, "test_paths": paths, "test_labels": labels, "source": source}


def summarise(runs: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    rows = []
    for name in names:
        mine = [r for r in runs if r["variant"] == name]
        row: dict[str, Any] = {"variant": name, "runs": len(mine)}
        for key in ("val_ap", "test_ap", "test_acc_0.5", "test_acc_threshold", "routing_entropy", "routing_gap",
                    "train_seconds"):
            values = [r[key] for r in mine if r[key] is not None]
            row[key] = statistics.fmean(values) if values else None
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    def cell(row: dict[str, Any], key: str, digits: int = 3) -> str:
        if row[key] is None:
            return "n/a"
        return f"{row[key]:.{digits}f} ± {row[f'{key}_std']:.{digits}f}"

    lines = [
        "| router | runs | val AP | test AP | test acc @0.5 | test acc @calibrated | routing entropy (nats) "
        "| real/fake routing gap | train s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['variant']} | {row['runs']} | {cell(row, 'val_ap')} | {cell(row, 'test_ap')} | "
            f"{cell(row, 'test_acc_0.5')} | {cell(row, 'test_acc_threshold')} | {cell(row, 'routing_entropy')} | {cell(row, 'routing_gap')} | "
            f"{cell(row, 'train_seconds', 0)} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = args.variants.split(",")
    unknown = set(chosen) - {v.name for v in VARIANTS}
    if unknown:
        sys.exit(f"error: unknown variants {', '.join(sorted(unknown))}; choose from {', '.join(v.name for v in VARIANTS)}")
    variants = [next(v for v in VARIANTS if v.name == name) for name in chosen]
    with tempfile.TemporaryDirectory(prefix="routing-ablation-") as scratch:
        work = args.work or Path(scratch)
        data = prepare_data(args, work)
        print(f"data: {data['source']}; test images: {len(data['test_paths'])}", file=sys.stderr)
        runs = []
        for seed in seeds:
            for variant in variants:
                run = run_variant(variant, seed, args, data, work)
                runs.append(run)
                print(
                    f"{variant.name:10s} seed {seed}: val AP {run['val_ap']:.3f}  test AP {run['test_ap']:.3f}  "
                    f"acc@0.5 {run['test_acc_0.5']:.3f}  acc@t {run['test_acc_threshold']:.3f}  "
                    f"({run['train_seconds']:.0f} s)",
                    file=sys.stderr,
                )
    rows = summarise(runs, [v.name for v in variants])
    print(markdown(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"settings": settings, "data": data["source"], "summary": rows, "runs": runs},
                                        indent=1) + "\n")


if __name__ == "__main__":
    main()
