"""The ``ai-edited`` verdict end to end: a capture signed here with generative fill, counted by the scan
summary, accepted by ``--fail-on``, shown with its chain by ``inspect --json`` (the HTML report: test_report_scan_page)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from evidence_files import CAPTURE_SOURCE, IPTC, chain, encode, manifest, photo, sign, small_photo, write, xmp_packet
from typer.testing import CliRunner

from aigdetect.cli import app
from aigdetect.evidence import EvidenceConfig, collect_evidence, default_bands, fuse, summarize_c2pa

runner = CliRunner()
FIXTURES = Path(__file__).parent / "assets" / "c2pa" / "signals"
ASSETS = Path(__file__).parent / "assets" / "c2pa_signals" / "signed"
GENERATIVE_FILL = [
    {"action": "c2pa.created", "digitalSourceType": CAPTURE_SOURCE},
    {"action": "c2pa.edited", "digitalSourceType": IPTC + "trainedAlgorithmicMedia", "softwareAgent": {"name": "Adobe Firefly"}},
]


def _generative_fill() -> bytes:
    signed, _ = sign(encode(small_photo(), "JPEG", quality=92), "image/jpeg", manifest(GENERATIVE_FILL))
    return signed


def test_a_file_signed_now_gets_the_signals_the_evaluator_gave_one_signed_alike(tmp_path):
    recorded = ASSETS / "generative_fill.signals.json"
    expected = [sorted(t["trait"].split(":signal_")[1] for t in m["localInceptions"] + m["localTransformations"])
                for m in json.loads(recorded.read_text())["manifests"]]  # fmt: skip
    (summary,) = summarize_c2pa(write(tmp_path / "fill.jpg", _generative_fill()))
    assert [sorted(m["signals"]) for m in summary["manifests"]] == expected == [
        ["ambiguousActions", "capturedMedia", "perceptibleGenAI"]
    ]


def test_a_signed_capture_with_generative_fill_is_ai_edited(tmp_path):
    path = write(tmp_path / "fill.jpg", _generative_fill())
    root, _, _ = chain()
    trust = EvidenceConfig(c2pa_trust=str(write(tmp_path / "anchors.pem", root)))
    for config, strength in ((None, "moderate"), (trust, "strong")):
        (finding,) = collect_evidence(path, config)
        assert (finding.claim, finding.strength, finding.generator) == ("ai-edited", strength, "Adobe Firefly")
        assert "records generative parts or edits in its chain (perceptibleGenAI)" in finding.detail
        assert finding.detail.endswith("signals: capturedMedia, perceptibleGenAI")
        for score in (0.0, 0.99, None):
            assert fuse([finding], score, 0.5, default_bands(0.5)).verdict == "ai-edited"


@pytest.fixture()
def folder(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    write(folder / "fill.jpg", _generative_fill())
    xmp = xmp_packet({"Iptc4xmpExt:DigitalSourceType": IPTC + "compositeWithTrainedAlgorithmicMedia"})
    write(folder / "xmp.jpg", encode(photo(1), "JPEG", xmp=xmp))
    shutil.copy(FIXTURES / "C.jpg", folder / "gradient.jpg")  # algorithmicMedia: not AI
    return folder


def test_fail_on_ai_edited_and_the_summary_counts(folder, tiny_checkpoint, tmp_path):
    summary_path, out = tmp_path / "summary.json", tmp_path / "v.jsonl"
    base = ["scan", str(folder), "--checkpoint", str(tiny_checkpoint), "--workers", "0", "--quiet", "--out", str(out)]
    result = runner.invoke(app, [*base, "--summary-json", str(summary_path), "--fail-on", "ai-edited"])
    assert result.exit_code == 3 and result.stderr.splitlines() == ["fail-on: 2 ai-edited"]
    rows = {Path(r["path"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert {name: row["verdict"] for name, row in rows.items() if name != "gradient.jpg"} == {
        "fill.jpg": "ai-edited",
        "xmp.jpg": "ai-edited",
    }
    assert rows["gradient.jpg"]["verdict"] != "ai-generated"
    verdicts = json.loads(summary_path.read_text())["verdicts"]
    assert verdicts["ai-edited"] == 2 and sum(verdicts.values()) == 3 and "ai-generated" not in verdicts
    clean = runner.invoke(app, [*base[:-2], "--fail-on", "ai-generated"])
    assert clean.exit_code == 0, clean.output


def test_inspect_json_lists_the_manifests_of_a_real_chain(tiny_checkpoint):
    result = runner.invoke(app, ["inspect", str(FIXTURES / "ocsp.jpg"), "--checkpoint", str(tiny_checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    assert report["verdict"] == "ai-edited" and report["generator"] == "Adobe Firefly"
    (store,) = report["c2pa"]
    assert [sorted(m) for m in store["manifests"]] == [
        ["active", "ingredients", "label", "pseudo", "signals", "signer", "trust"]
    ] * 2
    assert [(m["label"], m["active"], m["signer"], m["trust"]) for m in store["manifests"]] == [
        ("adobe:urn:uuid:f3a46a78-8103-4e04-9f98-abcf03ebab19", True, "Adobe C2PA", "untrusted"),
        ("urn:uuid:83875007-1e81-4027-847f-4137f13027db", False, "Adobe Firefly C2PA Stage", "untrusted"),
    ]
    assert [f["claim"] for f in report["findings"]] == ["ai-edited", "none"]
