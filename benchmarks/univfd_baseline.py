"""A plain scoring loop in the style of UnivFD's validate.py, the baseline `scan_throughput.py` times.

PIL decode -> CenterCrop -> ToTensor -> Normalize in DataLoader workers, batch 128, fp32, no pinned
memory; the detector comes from an aigdetect checkpoint, so that its scores can be compared with a
scan's. Writes a JSON object {path: probability}.

    python benchmarks/univfd_baseline.py FOLDER --checkpoint detector.safetensors --out scores.json
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from aigdetect import load_detector

SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


class Folder(Dataset):
    """validate.py's RealFakeDataset, reduced to the decoding and transform it performs."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths = paths
        self.transform = T.Compose(
            [T.CenterCrop(size), T.ToTensor(), T.Normalize(mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            return self.transform(image.convert("RGB"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--backbone-weights", default=None, help="as scan's option; 'none' for a random backbone")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    paths = sorted(p for p in args.folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    random = args.backbone_weights == "none"
    detector = load_detector(args.checkpoint, backbone_weights=args.backbone_weights, allow_random_backbone=random).eval()
    loader = DataLoader(Folder(paths, detector.image_size), batch_size=args.batch_size, num_workers=args.workers)
    scores: list[float] = []
    with torch.no_grad():
        for pixels in loader:
            scores.extend(torch.sigmoid(detector(pixels).logits).flatten().tolist())
    args.out.write_text(json.dumps({str(path.resolve()): score for path, score in zip(paths, scores)}))


if __name__ == "__main__":
    main()
