"""How many images per second the scan's decode workers can hand over, with no model at all.

On a GPU the forward pass is cheap and the workers are the limit, so this is the ceiling of the
scan's input side. It compares what the workers send:
  uint8: the scan's own loader, which sends uint8 crops; they are normalised on the device later,
         outside this measurement, since a GPU does that almost for free;
  float: the same loader with CLIP normalisation done in the workers, as validate.py's transform
         does, which sends four times the bytes.

    python benchmarks/decode_throughput.py --size 224 --n 3000 --workers 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from scan_throughput import KINDS, generate
from torch.utils.data import DataLoader

from aigdetect.data.config import DEFAULT_MAX_PIXELS
from aigdetect.data.preprocess import PreprocessConfig
from aigdetect.data.transforms import normalize_pixels
from aigdetect.engine.infer import _collate, _FileDataset


class _FloatInWorkers(_FileDataset):
    def __getitem__(self, index: int):
        record, pixels = super().__getitem__(index)
        return record, None if pixels is None else normalize_pixels(pixels, PreprocessConfig())


def rate(dataset: _FileDataset, workers: int, batch_size: int) -> float:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=_collate)
    start = time.perf_counter()
    count = sum(len(records) for records, _ in loader)
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=224, help="crop side, the backbone's input size")
    parser.add_argument("--n", type=int, default=3000, help="images per kind")
    parser.add_argument("--kinds", default="png256,jpeg512")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each variant")
    args = parser.parse_args()
    print(f"torch: {torch.__version__}  workers: {args.workers}  crop: {args.size}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds.split(","):
            if kind not in KINDS:
                parser.error(f"unknown kind {kind!r}; known: {', '.join(KINDS)}")
            paths = generate(Path(tmp), [kind], args.n)
            figures: dict[str, list[float]] = {"uint8": [], "float": []}
            for _ in range(args.repeats):
                for name, cls in (("uint8", _FileDataset), ("float", _FloatInWorkers)):
                    dataset = cls(paths, args.size, 0, None, DEFAULT_MAX_PIXELS)
                    figures[name].append(rate(dataset, args.workers, args.batch_size))
            best = {name: max(values) for name, values in figures.items()}
            runs = "  ".join(f"{name} {', '.join(f'{v:.0f}' for v in values)}" for name, values in figures.items())
            print(f"{kind:9s} files {len(paths):6d}  {runs} img/s  ratio uint8/float (best): {best['uint8'] / best['float']:.2f}")


if __name__ == "__main__":
    main()
