"""Scan throughput against UnivFD's validate.py pipeline and the model-only ceiling, in one run.

Three measurements on the same detector (same backbone and head) and the same generated images:
  (a) scan: `aigdetect scan` end to end in a subprocess (walk, decode, score, write CSV); its rate
      is taken from the scan's own JSON summary, so interpreter start-up and model loading are excluded;
  (b) baseline: UnivFD's validate.py pipeline: PIL decode -> CenterCrop -> ToTensor -> Normalize in
      4 DataLoader workers, batch 128, fp32, no pinned memory, a GPU sync after every batch;
  (c) ceiling: the forward pass alone on synthetic tensors already on the device, at scan's precision
      and batch size, all cores computing; the best of three timed runs.

    python benchmarks/scan_throughput.py --device cpu --model tests/assets/tiny.json --backbone-weights none --n 512
    python benchmarks/scan_throughput.py --device cuda --model vitl14 --n 4096 --kinds png256,jpeg512

The last line printed is `ratio scan/baseline: X.XX`, the geometric mean over the image kinds.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from aigdetect import MoLEConfig, create_detector, save_detector
from aigdetect.engine.infer import autocast_for, default_batch_size, resolve_device

KINDS = {
    "png256": ((256, 256), "PNG", ".png"),
    "jpeg512": ((512, 512), "JPEG", ".jpg"),
    "jpeg12mp": ((4000, 3000), "JPEG", ".jpg"),
}


def generate(folder: Path, kinds: list[str], n: int, seed: int = 0) -> list[Path]:
    """Write n images per kind (a tenth as many 12-MP JPEGs, at least 2): smooth noise, photo-like sizes."""
    rng = np.random.default_rng(seed)
    paths = []
    for kind in kinds:
        (width, height), fmt, suffix = KINDS[kind]
        count = max(2, n // 10) if kind == "jpeg12mp" else n
        for i in range(count):
            small = rng.integers(0, 256, (height // 8, width // 8, 3), dtype=np.uint8)
            image = Image.fromarray(small).resize((width, height), Image.BILINEAR)
            path = folder / kind / f"{i:06d}{suffix}"
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
            paths.append(path)
    return paths


class _UnivFDDataset(Dataset):
    """validate.py's RealFakeDataset, reduced to the decoding and transform it performs."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths = paths
        self.transform = T.Compose(
            [T.CenterCrop(size), T.ToTensor(), T.Normalize(mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.transform(Image.open(self.paths[index]).convert("RGB"))


def baseline(detector, paths: list[Path], device: torch.device) -> float:
    loader = DataLoader(_UnivFDDataset(paths, detector.image_size), batch_size=128, num_workers=4, shuffle=False)
    detector.to(device).eval()
    scores: list[float] = []
    start = time.perf_counter()
    with torch.no_grad():
        for pixels in loader:
            scores.extend(torch.sigmoid(detector(pixels.to(device)).logits).flatten().tolist())
    return len(scores) / (time.perf_counter() - start)


def ceiling(detector, device: torch.device, n: int, batch_size: int) -> float:
    detector.to(device).eval()
    pixels = torch.randn(batch_size, 3, detector.image_size, detector.image_size, device=device)
    steps = max(2, n // batch_size)
    best = 0.0
    with torch.inference_mode(), autocast_for(device):
        detector(pixels)
        for _ in range(3):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(steps):
                detector(pixels)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = max(best, steps * batch_size / (time.perf_counter() - start))
    return best


def scan(checkpoint: Path, folder: Path, out: Path, args: argparse.Namespace) -> float:
    command = [sys.executable, "-m", "aigdetect", "scan", str(folder), "--checkpoint", str(checkpoint),
               "--device", args.device, "--format", "json", "--out", str(out)]
    if args.backbone_weights:
        command += ["--backbone-weights", args.backbone_weights]
    if args.batch_size:
        command += ["--batch-size", str(args.batch_size)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return float(json.loads(out.read_text())["summary"]["images_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default="vitl14")
    parser.add_argument("--backbone-weights", default=None)
    parser.add_argument("--blocks", type=int, default=0, help="adapted blocks of the measured detector")
    parser.add_argument("--n", type=int, default=512, help="images per kind")
    parser.add_argument("--kinds", default="png256,jpeg512,jpeg12mp")
    parser.add_argument("--batch-size", type=int, default=None, help="scan's batch size (default: scan's own)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    kinds = [k for k in args.kinds.split(",") if k]
    detector = create_detector(args.model, MoLEConfig(blocks=args.blocks), backbone_weights=args.backbone_weights)
    print(f"device: {device}  torch: {torch.__version__}  model: {args.model}  blocks: {args.blocks}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        checkpoint = tmp_path / "detector.safetensors"
        save_detector(detector, checkpoint)
        results = {}
        for kind in kinds:
            folder = tmp_path / "images"
            paths = generate(folder, [kind], args.n)
            a = scan(checkpoint, folder / kind, tmp_path / f"{kind}.json", args)
            b = baseline(detector, paths, device)
            results[kind] = (a, b)
            print(f"{kind:9s} files {len(paths):6d}  scan {a:9.1f} img/s  baseline {b:9.1f} img/s  ratio a/b {a / b:5.2f}")
        c = ceiling(detector, device, 4 * args.n, args.batch_size or default_batch_size(device))
        print(f"ceiling (model only) {c:9.1f} img/s")
        for kind, (a, _) in results.items():
            print(f"{kind:9s} ratio scan/ceiling: {a / c:.2f}")
        ratios = [a / b for a, b in results.values()]
        print(f"ratio scan/baseline: {float(np.exp(np.mean(np.log(ratios)))):.2f}")


if __name__ == "__main__":
    main()
