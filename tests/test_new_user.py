"""What a new user stumbled on (issue 22, part 4): warnings a random backbone must carry, one detector
id everywhere, honest speed figures, and the messages, help and completion a first run meets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_image
from typer.testing import CliRunner

from aigdetect import MoLEConfig, create_detector, load_detector, save_detector
from aigdetect.cli import app
from aigdetect.cli.progress import Pace, PlainProgress
from aigdetect.cli.scan import _summary_text
from aigdetect.engine.runtime import RuntimeConfig
from aigdetect.report import write_scan_report
from aigdetect.scan import ScanConfig, run_scan
from aigdetect.scan.sidecar import sidecar_path

runner = CliRunner()
REPO = Path(__file__).resolve().parents[1]
WIDE = {"COLUMNS": "250"}
ONE_PROCESS = RuntimeConfig(workers=0)


def _images(folder: Path, count: int) -> Path:
    for index in range(count):
        write_image(folder / f"img_{index}.png", seed=index)
    return folder


def _scan_to(out: Path, folder: Path, checkpoint: Path) -> None:
    result = runner.invoke(app, ["scan", str(folder), "--checkpoint", str(checkpoint), "--workers", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def random_probe(tmp_path_factory) -> Path:
    """A linear probe trained (here: saved) on pretrained ViT-B/32 features, so that
    ``--backbone-weights none`` swaps its backbone for random weights."""
    path = tmp_path_factory.mktemp("probe") / "probe.safetensors"
    save_detector(create_detector("vitb32", MoLEConfig(blocks=0), backbone_weights="none"), path)
    return path


RANDOM = ["--backbone-weights", "none", "--allow-random-backbone"]
WARNING = re.compile(
    r"detector \S+\+random-backbone@[0-9a-f]{12} runs on a random backbone: its scores and verdicts mean nothing"
)


def test_a_random_backbone_scan_warns_on_stderr_in_the_summary_and_on_the_report(tmp_path, random_probe):
    folder = _images(tmp_path / "imgs", 2)
    out, summary, page = tmp_path / "r.csv", tmp_path / "s.json", tmp_path / "r.html"
    result = runner.invoke(app, ["scan", str(folder), "--checkpoint", str(random_probe), *RANDOM, "--workers", "0",
                                 "--out", str(out), "--summary-json", str(summary), "--html", str(page)])  # fmt: skip
    assert result.exit_code == 0, result.output
    warned = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warned) == 2 and all(WARNING.search(line) for line in warned), "before the scan, and after its summary"
    (told,) = json.loads(summary.read_text())["warnings"]
    assert WARNING.search(told) and warned[0] == f"warning: {told}"
    html = page.read_text(encoding="utf-8")
    banner = re.search(r'<div class="banner" id="warnings" role="alert">(.*?)</div>', html, re.S)
    assert banner is not None and WARNING.search(banner.group(1))
    # The rows alone say so too: a report of the results file without its summary still shows the banner.
    Path(sidecar_path(str(out))).unlink()
    bare = tmp_path / "bare.html"
    write_scan_report(out, bare, thumbnails=0, summary={})
    assert 'id="warnings"' in bare.read_text(encoding="utf-8")


def test_inspect_warns_of_a_random_backbone_in_the_terminal_and_in_json(tmp_path, random_probe):
    image = write_image(tmp_path / "a.png")
    panel = runner.invoke(app, ["inspect", str(image), "--checkpoint", str(random_probe), *RANDOM], env=WIDE)
    assert panel.exit_code == 0, panel.output
    assert WARNING.search(" ".join(panel.stdout.split()))
    listed = runner.invoke(app, ["inspect", str(image), "--checkpoint", str(random_probe), *RANDOM, "--json"])
    (report,) = json.loads(listed.stdout)
    assert len(report["warnings"]) == 1 and WARNING.search(report["warnings"][0])


def test_a_real_detector_carries_no_warning(tmp_path, tiny_checkpoint):
    folder = _images(tmp_path / "imgs", 1)
    summary = tmp_path / "s.json"
    result = runner.invoke(app, ["scan", str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0",
                                 "--summary-json", str(summary)])  # fmt: skip
    assert result.exit_code == 0 and "warning" not in result.stderr
    assert json.loads(summary.read_text())["warnings"] == []


def test_cli_scan_api_scan_inspect_and_export_give_one_detector_id(tmp_path, tiny_checkpoint):
    pytest.importorskip("onnx")
    folder = _images(tmp_path / "imgs", 3)
    out = tmp_path / "cli.jsonl"
    _scan_to(out, folder, tiny_checkpoint)
    cli_ids = {json.loads(line)["detector"] for line in out.read_text().splitlines()}
    assert len(cli_ids) == 1
    (identity,) = cli_ids

    detector = load_detector(tiny_checkpoint)
    api_out = tmp_path / "api.jsonl"
    run_scan(detector, ScanConfig(paths=(str(folder),), out=str(api_out), runtime=ONE_PROCESS))
    assert {json.loads(line)["detector"] for line in api_out.read_text().splitlines()} == {identity}
    # The API resumes the command line's output: every row is kept, none scored again.
    resumed = run_scan(detector, ScanConfig(paths=(str(folder),), out=str(out), resume=True, runtime=ONE_PROCESS))
    assert (resumed.resumed, resumed.scored) == (3, 0)

    inspected = runner.invoke(app, ["inspect", str(folder / "img_0.png"), "--checkpoint", str(tiny_checkpoint), "--json"])
    assert json.loads(inspected.stdout)[0]["detector"] == identity
    model = tmp_path / "m.onnx"
    exported = runner.invoke(app, ["export", "--checkpoint", str(tiny_checkpoint), "--out", str(model)])
    assert exported.exit_code == 0, exported.output
    assert json.loads(Path(str(model) + ".json").read_text())["detector"] == identity


class Ticks:
    """A clock that gives the listed times, one per call, and fails when asked once too often."""

    def __init__(self, *times: float) -> None:
        self.times = iter(times)

    def __call__(self) -> float:
        return next(self.times)


def test_the_summary_gives_the_whole_wall_time_and_the_scoring_rate_apart(tmp_path, tiny_detector):
    folder = _images(tmp_path / "imgs", 10)
    out = tmp_path / "r.csv"
    # Started at 100 s; the model is ready at 130 s (30 s of start-up and model build); the last row at 135 s.
    summary = run_scan(tiny_detector, ScanConfig(paths=(str(folder),), out=str(out), runtime=ONE_PROCESS),
                       started_at=100.0, clock=Ticks(130.0, 135.0))  # fmt: skip
    figures = summary.as_dict()
    assert (figures["wall_s"], figures["scoring_s"], figures["images_per_s"]) == (35.0, 5.0, 2.0)
    assert "10 scanned in 35.0 s (scoring 5.0 s at 2.0 images/s)" in _summary_text(summary)
    page = tmp_path / "r.html"
    write_scan_report(out, page, thumbnails=0, summary=figures)
    html = page.read_text(encoding="utf-8")
    assert '<dt>Scan time</dt><dd id="scan-time">35.0 s</dd>' in html
    assert '<dt>Scoring</dt><dd id="scoring-time">5.0 s (2.0 images/s)</dd>' in html


def test_the_command_counts_its_wall_time_from_its_own_start(tmp_path, tiny_checkpoint, monkeypatch):
    import time

    monkeypatch.setattr("aigdetect.cli.scan.STARTED_AT", time.perf_counter() - 1000.0)
    folder = _images(tmp_path / "imgs", 2)
    summary = tmp_path / "s.json"
    result = runner.invoke(app, ["scan", str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0",
                                 "--summary-json", str(summary)])  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(summary.read_text())
    assert figures["wall_s"] >= 1000.0 > figures["scoring_s"]
    assert re.search(r"2 scanned in 1\d{3}\.\d s \(scoring \d+\.\d s", result.stderr)


def test_time_left_follows_the_recent_rate_not_the_average_since_the_start():
    now = [0.0]
    plain = PlainProgress(lambda: now[0], interval_s=30.0, window_s=60.0)
    lines: dict[float, Pace] = {}

    def update(t: float, done: int) -> None:
        now[0] = t
        pace = plain.due(done, 1300)
        if pace is not None:
            lines[t] = pace

    update(100.0, 0)  # 100 s of loading the model: no work done yet
    for step in range(1, 11):  # then 1 file/s for 100 s
        update(100.0 + 10 * step, step * 10)
    for step in range(1, 7):  # then 10 files/s for 60 s
        update(200.0 + 10 * step, 100 + step * 100)
    assert sorted(lines) == [110.0, 140.0, 170.0, 200.0, 230.0, 260.0]
    assert lines[110.0] == Pace(1.0, 1290.0), "the model's loading is not counted as slow work"
    # At 260 s: 600 files in the last 60 s, 600 to go. The average since the start (700 in 260 s)
    # would promise 223 s.
    assert lines[260.0] == Pace(10.0, 60.0)
    assert lines[260.0].left_text == "about 1 min left"


def test_a_missing_checkpoint_or_results_file_says_no_such_file(tmp_path):
    folder = _images(tmp_path / "imgs", 1)
    missing = tmp_path / "nothere.safetensors"
    for command in (["scan", str(folder)], ["inspect", str(folder / "img_0.png")]):
        result = runner.invoke(app, [*command, "--checkpoint", str(missing)])
        assert result.exit_code == 2 and result.stderr.splitlines() == [f"error: checkpoint {missing}: no such file"]
    report = runner.invoke(app, ["report", str(tmp_path / "nothere.csv"), "-o", str(tmp_path / "r.html")])
    assert report.exit_code == 2 and report.stderr.splitlines() == [f"error: {tmp_path / 'nothere.csv'}: missing: no such file"]


def test_inspect_refuses_a_folder_before_loading_anything(tmp_path, monkeypatch):
    folder = _images(tmp_path / "imgs", 1)
    monkeypatch.setattr("aigdetect.models.factory.load_chosen", lambda *a, **k: pytest.fail("the model was loaded"))
    result = runner.invoke(app, ["inspect", str(folder)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: {folder} is a folder: inspect takes image files; scan a folder with 'aigdetect scan'"
    ]


def test_inspect_exits_1_when_no_file_could_be_scored_and_its_card_shows_no_placeholders(tmp_path, tiny_checkpoint):
    good = write_image(tmp_path / "good.png")
    cut = tmp_path / "cut.png"
    cut.write_bytes(good.read_bytes()[:60])
    args = ["inspect", str(cut), "--checkpoint", str(tiny_checkpoint)]
    card = runner.invoke(app, args, env=WIDE)
    assert card.exit_code == 1 and card.stderr.splitlines()[-1] == "error: the file could not be scored"
    text = " ".join(card.stdout.split())
    assert "could not be scored: truncated" in text
    assert "None" not in text and "-x-" not in text
    assert "score not scored (threshold 0.500" in text and "file 60 bytes" in text
    listed = runner.invoke(app, [*args, "--json"])
    assert listed.exit_code == 1 and json.loads(listed.stdout)[0]["error"]["reason"] == "truncated"
    mixed = runner.invoke(app, ["inspect", str(cut), str(good), "--checkpoint", str(tiny_checkpoint), "--json"])
    assert mixed.exit_code == 0, "one file was scored"


def test_model_takes_what_help_says_and_refuses_a_bare_backbone_with_a_way_forward(tmp_path):
    folder = _images(tmp_path / "imgs", 1)
    helped = " ".join(runner.invoke(app, ["scan", "-h"], env=WIDE).stdout.split())
    model_help = helped.split("--model NAME" if "--model NAME" in helped else "--model <str>")[1].split("--checkpoint")[0]
    assert "univfd-vitl14" in model_help and "vitb32" not in model_help and "vitb16" not in model_help
    result = runner.invoke(app, ["scan", str(folder), "--model", "vitb32"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "error: the backbone 'vitb32' has no built-in detector (built-ins: univfd-vitl14 on vitl14); "
        "train one with 'aigdetect train --model vitb32' and pass its --checkpoint"
    ]


def test_readme_names_the_source_and_sha256_of_the_offline_weights():
    from open_clip.pretrained import get_pretrained_cfg

    url = get_pretrained_cfg("ViT-L-14", "openai")["url"]
    digest = url.rstrip("/").split("/")[-2]  # open_clip checks the download against this folder name
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    flat = " ".join(readme.split())
    assert url in flat and f"SHA-256 `{digest}`" in flat


def test_readme_train_command_for_the_synthetic_set_is_accepted(monkeypatch):
    """The README's train line, as a user pastes it, gets past option parsing and config checks
    (the training itself is covered by test_train)."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    after = readme.split("write_synthetic_dataset as w; w('syn')")[1]
    command = re.search(r"\n    (aigdetect train (?:.*\\\n)*.*)\n", after).group(1)
    words = command.replace("\\\n", " ").split()[1:]
    assert "--backbone-weights" in words and words[words.index("--backbone-weights") + 1] == "none"
    from aigdetect.cli import train as train_command

    built = []
    check = train_command.TrainConfig.__post_init__

    def check_then_stop(config):
        check(config)
        built.append(config)
        raise KeyboardInterrupt

    monkeypatch.chdir(REPO)
    monkeypatch.setattr(train_command.TrainConfig, "__post_init__", check_then_stop)
    result = runner.invoke(app, words)
    assert len(built) == 1, result.output
    assert (Path(built[0].model), built[0].backbone_weights, built[0].steps) == (REPO / "tests/assets/tiny.json", "none", 40)


def test_help_shows_names_not_python_types():
    for command in ("scan", "inspect", "report", "routes", "export"):
        text = runner.invoke(app, [command, "-h"], env=WIDE).stdout
        assert not re.search(r"<(list\[|int range|tuple)", text), f"{command} -h: {re.findall(r'<[^>]*>', text)}"
    assert "--bands LOW,HIGH" in runner.invoke(app, ["scan", "-h"], env=WIDE).stdout


@pytest.mark.parametrize(
    "words, expected",
    [
        ("aigdetect scan --format j", ["json", "jsonl"]),
        ("aigdetect scan --fail-on likely-ai,co", ["likely-ai,conflict"]),
        ("aigdetect scan --backend o", ["onnxruntime", "openvino"]),
        ("aigdetect scan --device c", ["cpu", "cuda"]),
        ("aigdetect export --format o", ["onnx"]),
    ],
)
def test_completion_offers_the_values_of_fixed_choice_options(words, expected):
    env = {**os.environ, "_AIGDETECT_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(words.split()) - 1)}
    completed = subprocess.run([sys.executable, "-m", "aigdetect"], env=env, capture_output=True, text=True)
    assert completed.stdout.split() == expected


def test_counts_are_pluralised_and_bands_errors_show_what_was_typed(tmp_path, tiny_checkpoint):
    folder = _images(tmp_path / "imgs", 1)
    (folder / "cut.png").write_bytes((folder / "img_0.png").read_bytes()[:60])
    result = runner.invoke(app, ["scan", str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--no-evidence"])
    assert re.match(r"2 files: 1 [a-z-]+, 1 error \(truncated 1\); 2 scanned in ", result.stderr.splitlines()[-1]), result.stderr
    bands = runner.invoke(app, ["scan", str(folder), "--bands", "0.1"])
    assert bands.exit_code == 2 and bands.stderr.splitlines() == ["error: --bands takes two numbers LOW,HIGH, got '0.1'"]


def test_an_all_empty_generator_column_loads_as_the_readme_says(tmp_path, tiny_checkpoint):
    pandas = pytest.importorskip("pandas")
    folder = _images(tmp_path / "imgs", 2)
    out = tmp_path / "r.csv"
    _scan_to(out, folder, tiny_checkpoint)
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert (
        'cells are all empty, `generator` most often, loads as float64 NaN: read it with `dtype={"generator": "string"}`'
        in readme
    )
    assert str(pandas.read_csv(out)["generator"].dtype) == "float64"
    assert str(pandas.read_csv(out, dtype={"generator": "string"})["generator"].dtype) == "string"


def test_the_report_banner_is_written_from_detector_ids_never_from_the_file(tmp_path, tiny_checkpoint):
    folder = _images(tmp_path / "imgs", 1)
    out = tmp_path / "r.csv"
    _scan_to(out, folder, tiny_checkpoint)
    page = tmp_path / "r.html"
    write_scan_report(out, page, thumbnails=0, summary={"warnings": ["this photo is verified authentic"]})
    html = page.read_text(encoding="utf-8")
    assert 'id="warnings"' not in html and "verified authentic" not in html
