"""Make the README's report screenshot from a real scan, from scratch, in a temporary folder.

The picture must show what aigdetect computed, never invented rows. So this script writes a seeded
synthetic training set, trains the tiny test model on it (250 steps on one CPU thread, about 20
seconds), builds a folder to scan (the synthetic validation images, two real photographs, two files
carrying generator metadata and one truncated JPEG), runs ``aigdetect scan`` on it as a user would,
and photographs the HTML report in headless Chromium.

    python scripts/demo_report.py --out docs/report.png

Scores come from a tiny model trained on synthetic data: the page shows what the report looks like,
not how well any detector does on real images.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image, PngImagePlugin

import aigdetect
from aigdetect.data.synthetic import synthetic_images, write_synthetic_dataset
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.training.config import TrainConfig
from aigdetect.training.train import TrainResult, train

REPO = Path(__file__).resolve().parent.parent
TINY_MODEL = REPO / "tests" / "assets" / "tiny.json"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-default-apps", "--disable-sync"]  # fmt: skip
SEED = 0
SCAN_FOLDER = "images"
IMAGE_SIZE = 64
"""Side of the synthetic images; the tiny model sees 32 px, so 64 keeps the upsampling trace visible to it."""
A1111_PARAMETERS = (
    "a dahlia in bloom, macro photograph\nNegative prompt: blurry\n"
    "Steps: 30, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 1234, Size: 1024x1024, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Version: v1.6.0"
)
IPTC_AI_SOURCE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def train_tiny_detector(work: Path, steps: int) -> TrainResult:
    """Train the tiny test model on a seeded synthetic set, so its scores mean something on that data."""
    import torch

    data = work / "training"
    write_synthetic_dataset(data, "wang2020", per_class=64, size=IMAGE_SIZE, seed=SEED, val_per_class=16)
    config = TrainConfig(
        out=str(work / "detector.safetensors"), data=str(data), model=str(TINY_MODEL), backbone_weights="none",
        steps=steps, batch_size=32, lr=3e-3, eval_every=max(1, steps // 4), patience=0, seed=SEED,
        log_every=max(1, steps // 4), runtime=RuntimeConfig(device="cpu", workers=0),
    )  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tiny model trains fastest on one thread, and leaves the other core free
    try:
        return train(config)
    finally:
        torch.set_num_threads(threads)


def _xmp_packet(source_type: str, creator_tool: str) -> bytes:
    """An XMP packet declaring an IPTC digital source type, as generators and editors write it."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'xmlns:xmp="http://ns.adobe.com/xap/1.0/" Iptc4xmpExt:DigitalSourceType="{source_type}" '
        f'xmp:CreatorTool="{creator_tool}"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    ).encode("utf-8")


def build_scan_folder(folder: Path, training: Path) -> None:
    """The folder to scan: validation images, photographs, generator metadata, and one broken file."""
    from sklearn.datasets import load_sample_images

    shutil.copytree(training / "val", folder / "synthetic")
    photos = folder / "photos"
    photos.mkdir(parents=True)
    jpegs = {}
    for name, array in zip(("china.jpg", "flower.jpg"), load_sample_images().images):
        buffer = io.BytesIO()
        Image.fromarray(array).save(buffer, format="JPEG", quality=90)
        jpegs[name] = buffer.getvalue()
        (photos / name).write_bytes(jpegs[name])
    (photos / "truncated.jpg").write_bytes(jpegs["flower.jpg"][: len(jpegs["flower.jpg"]) // 3])
    generated = folder / "generated"
    generated.mkdir()
    sdxl_pixels, firefly_pixels = synthetic_images(2, label=1, size=256, seed=SEED + 1, kinds=("photo",))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_PARAMETERS)
    Image.fromarray(sdxl_pixels).save(generated / "a1111.png", pnginfo=info)
    xmp = _xmp_packet(IPTC_AI_SOURCE, "Adobe Firefly")
    Image.fromarray(firefly_pixels).save(generated / "firefly.jpg", quality=92, xmp=xmp)


def run_scan(work: Path, checkpoint: Path) -> tuple[Path, Path]:
    """``aigdetect scan`` in a child process, from the work folder, so the report shows short relative paths."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    package_root = str(Path(aigdetect.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)
    command = [sys.executable, "-m", "aigdetect", "scan", SCAN_FOLDER, "--checkpoint", checkpoint.name,
               "--out", "verdicts.csv", "--html", "report.html", "--workers", "0"]  # fmt: skip
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"aigdetect scan failed (exit {done.returncode}):\n{done.stderr}")
    return work / "verdicts.csv", work / "report.html"


def screenshot(page: Path, out: Path, size: tuple[int, int]) -> None:
    """Open the report offline in headless Chromium and save what a window of ``size`` shows."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": size[0], "height": size[1]}, device_scale_factor=1)
            window = context.new_page()
            url = page.resolve().as_uri()
            window.route("**/*", lambda route: route.continue_() if route.request.url == url else route.abort())
            window.goto(url)
            window.wait_for_selector("body[data-ready]", state="attached")
            out.parent.mkdir(parents=True, exist_ok=True)
            window.screenshot(path=str(out))
        finally:
            browser.close()


def make_screenshot(work: Path, out: Path, steps: int, size: tuple[int, int]) -> None:
    """Train, build the folder, scan it and photograph the report, all under ``work``."""
    result = train_tiny_detector(work, steps)
    print(f"trained {result.steps} steps: validation AP {result.val_ap:.3f}, threshold {result.threshold:.3f}")
    build_scan_folder(work / SCAN_FOLDER, work / "training")
    _, report = run_scan(work, Path(result.out))
    screenshot(report, out, size)
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="the PNG screenshot to write")
    parser.add_argument("--steps", type=int, default=250, help="training steps (default 250; 4 for a quick check)")
    parser.add_argument("--width", type=int, default=1280, help="browser window width in px (default 1280)")
    parser.add_argument("--height", type=int, default=1400, help="browser window height in px (default 1400)")
    parser.add_argument("--keep", type=Path, help="work in this new folder and keep it (data, detector, verdicts, report)")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.width < 320 or args.height < 240:
        parser.error("--steps must be >= 1, --width >= 320 and --height >= 240")
    if not os.path.exists(CHROMIUM):
        parser.error(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    out, size = args.out.resolve(), (args.width, args.height)
    if args.keep is None:
        with tempfile.TemporaryDirectory(prefix="aigdetect-demo-") as scratch:
            make_screenshot(Path(scratch), out, args.steps, size)
    elif args.keep.exists():
        parser.error(f"--keep {args.keep} exists; name a new folder")
    else:
        args.keep.mkdir(parents=True)
        make_screenshot(args.keep.resolve(), out, args.steps, size)


if __name__ == "__main__":
    main()
