"""CPU engines: fp32 agrees with torch, reduced precision runs and is measured (never silent), the
engine cache is reused and never trusted when damaged, threads and missing extras are handled."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import platform
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_tiny_detector
from PIL import Image

from aigdetect.engine import backends, engine_cache
from aigdetect.engine.backends import EngineConfig, compare_logits, open_runner, sigmoid
from aigdetect.engine.engine_cache import MANIFEST_NAME, EntryKey, cache_root, cached_entry
from aigdetect.errors import ConfigError, InputError

INSTALLED = [name for name in ("onnxruntime", "openvino") if importlib.util.find_spec(name) is not None]
LOOSE_LOGIT_BOUND = 0.5
"""int8 and bf16 move a real ViT-B/32's logits by about 0.02; the tiny random model may move more."""


@pytest.fixture(scope="module")
def detector():
    return make_tiny_detector(seed=5).eval()


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("engine-cache")


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((6, 3, 32, 32)).astype(np.float32)


@pytest.fixture(scope="module")
def reference(detector, pixels) -> np.ndarray:
    with torch.no_grad():
        return detector(torch.from_numpy(pixels)).logits.numpy()


def test_torch_runner_is_the_detector_itself(detector, pixels, reference):
    runner = open_runner(detector)
    assert runner.engine_id == f"torch-{torch.__version__}-fp32"
    np.testing.assert_array_equal(runner.logits(pixels), reference)


@pytest.mark.parametrize("backend", INSTALLED)
def test_fp32_engines_match_torch(detector, pixels, reference, cache, backend):
    runner = open_runner(detector, EngineConfig(backend, "fp32"), cache_dir=cache)
    assert runner.name == backend and runner.precision == "fp32" and runner.engine_id.endswith("-fp32")
    np.testing.assert_allclose(runner.logits(pixels), reference, rtol=0, atol=1e-5)
    np.testing.assert_allclose(runner.logits(pixels[:1]), reference[:1], rtol=0, atol=1e-5)


def _reduced(backend: str, precision: str, detector, cache, monkeypatch):
    if precision == "bf16":
        monkeypatch.setattr(backends, "cpu_has_bf16", lambda: True)
    return open_runner(detector, EngineConfig(backend, precision), cache_dir=cache)


@pytest.mark.parametrize(
    "backend, precision", [(b, p) for b, p in (("onnxruntime", "int8"), ("openvino", "bf16")) if b in INSTALLED]
)
def test_reduced_precision_runs_and_its_shift_is_measured(detector, pixels, reference, cache, monkeypatch, backend, precision):
    runner = _reduced(backend, precision, detector, cache, monkeypatch)
    assert runner.precision == precision and runner.engine_id.endswith(f"-{precision}")
    shift = compare_logits(reference, runner.logits(pixels))
    print(f"{runner.engine_id}: max logit shift {shift.max_logit:.2e}, max score shift {shift.max_score:.2e}")
    assert math.isfinite(shift.max_logit) and math.isfinite(shift.max_score)
    # a zero shift would mean the engine quietly ran fp32
    assert 1e-6 < shift.max_logit < LOOSE_LOGIT_BOUND


@pytest.mark.skipif("onnxruntime" not in INSTALLED, reason="onnxruntime not installed")
def test_int8_model_holds_integer_matmuls(detector, cache):
    onnx = pytest.importorskip("onnx")
    ops = {node.op_type for node in onnx.load(str(backends.int8_model(detector, cache_dir=cache))).graph.node}
    plain = {node.op_type for node in onnx.load(str(backends.onnx_model(detector, cache_dir=cache))).graph.node}
    assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops
    assert "MatMulInteger" not in plain and "Conv" in ops, "the patch embedding stays fp32"


@pytest.mark.skipif("openvino" not in INSTALLED, reason="openvino not installed")
def test_bf16_without_bf16_units_is_refused_unless_forced(detector, pixels, reference, cache, monkeypatch):
    monkeypatch.setattr(backends, "cpu_has_bf16", lambda: False)
    with pytest.raises(ConfigError) as info:
        open_runner(detector, EngineConfig("openvino", "bf16"), cache_dir=cache)
    assert "\n" not in str(info.value) and "bf16" in str(info.value)
    forced = open_runner(detector, EngineConfig("openvino", "bf16", force_bf16=True), cache_dir=cache)
    assert forced.precision == "bf16"
    assert 0 < compare_logits(reference, forced.logits(pixels)).max_logit < LOOSE_LOGIT_BOUND


@pytest.mark.skipif(
    "openvino" not in INSTALLED or platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"),
    reason="needs OpenVINO on x86-64 Linux (/proc/cpuinfo)",
)
def test_bf16_detection_agrees_with_the_cpu_flags():
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    assert backends.cpu_has_bf16() == bool({"avx512_bf16", "amx_bf16"} & set(flags))


@pytest.mark.parametrize(
    "backend, precision, words",
    [
        ("openvino", "int8", "NNCF"),
        ("onnxruntime", "bf16", "no bf16"),
        ("torch", "int8", "fp32 only"),
        ("torch", "bf16", "fp32 only"),
        ("tensorrt", "fp32", "backend must be one of"),
        ("onnxruntime", "fp16", "precision must be one of"),
    ],
)
def test_unsupported_engines_are_refused_with_a_reason(backend, precision, words):
    with pytest.raises(ConfigError, match=words) as info:
        EngineConfig(backend, precision)
    assert "\n" not in str(info.value)


def test_engine_config_rejects_bad_threads_and_opset():
    with pytest.raises(ConfigError, match="threads"):
        EngineConfig("onnxruntime", threads=0)
    with pytest.raises(ConfigError, match="opset"):
        EngineConfig("onnxruntime", opset=12)


@pytest.mark.parametrize("backend, module, extra", [("onnxruntime", "onnxruntime", "onnx"), ("openvino", "openvino", "openvino")])
def test_a_missing_extra_is_a_one_line_install_hint(detector, monkeypatch, tmp_path, backend, module, extra):
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ConfigError) as info:
        open_runner(detector, EngineConfig(backend), cache_dir=tmp_path)
    message = str(info.value)
    assert "\n" not in message and f"pip install 'aigdetect[{extra}]'" in message and module in message
    assert not (tmp_path / "engines").exists(), "nothing is exported before the check"


def test_runners_respect_the_thread_count(detector, pixels, cache):
    seen = []
    handle = detector.register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    try:
        open_runner(detector, EngineConfig("torch", threads=1)).logits(pixels)
    finally:
        handle.remove()
    assert seen == [1] and torch.get_num_threads() == before
    if "onnxruntime" in INSTALLED:
        runner = open_runner(detector, EngineConfig("onnxruntime", threads=1), cache_dir=cache)
        assert runner.session.get_session_options().intra_op_num_threads == 1
    if "openvino" in INSTALLED:
        runner = open_runner(detector, EngineConfig("openvino", threads=1), cache_dir=cache)
        assert runner.compiled.get_property("INFERENCE_NUM_THREADS") == 1


def test_runner_checks_its_input(detector):
    runner = open_runner(detector)
    assert runner.logits(np.zeros((0, 3, 32, 32), dtype=np.float32)).shape == (0,)
    for bad in (np.zeros((2, 3, 32, 32)), np.zeros((2, 3, 24, 24), dtype=np.float32), [[0.0]]):
        with pytest.raises(ConfigError, match="float32 array of shape"):
            runner.logits(bad)


def test_compare_logits_hand_computed():
    reference = np.array([0.0, 2.0, -1.0])
    candidate = np.array([0.1, 2.0, -1.5])
    shift = compare_logits(reference, candidate)
    s = lambda v: 1.0 / (1.0 + math.exp(-v))  # noqa: E731
    assert shift.max_logit == pytest.approx(0.5)
    assert shift.max_score == pytest.approx(max(s(0.1) - 0.5, s(-1.0) - s(-1.5)))
    assert shift.flips == 1  # sigmoid(0) = 0.5 is not above 0.5; sigmoid(0.1) is
    with np.errstate(all="raise"):
        assert list(sigmoid(np.array([-1000.0, 1000.0]))) == [0.0, 1.0]
    with pytest.raises(ConfigError):
        compare_logits(reference, candidate[:2])


# The engine cache, first with a cheap builder, then end to end with the real exporter.

KEY = EntryKey("abc123", "onnx", "fp32", "torch-x+opset18")


def _builder(calls: list[int], payload: bytes = b"model bytes"):
    def build(folder: Path) -> None:
        calls.append(1)
        (folder / "model.onnx").write_bytes(payload)

    return build


def test_cache_reuses_a_valid_entry(tmp_path):
    calls: list[int] = []
    first = cached_entry(KEY, ("model.onnx",), _builder(calls), cache_dir=tmp_path)
    second = cached_entry(KEY, ("model.onnx",), _builder(calls), cache_dir=tmp_path)
    assert first == second and calls == [1]
    assert first.parent == tmp_path / "engines"
    manifest = json.loads((first / MANIFEST_NAME).read_text())
    assert manifest["key"] == KEY.to_dict()
    assert manifest["files"]["model.onnx"]["sha256"] == hashlib.sha256(b"model bytes").hexdigest()
    assert sorted(p.name for p in (tmp_path / "engines").iterdir()) == sorted([first.name, "seal.key"]), "no staging folders left"


def _flip_a_byte(folder: Path) -> None:
    data = bytearray((folder / "model.onnx").read_bytes())
    data[3] ^= 0xFF
    (folder / "model.onnx").write_bytes(data)


def _edit_manifest(change):
    def damage(folder: Path) -> None:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        change(manifest)
        (folder / MANIFEST_NAME).write_text(json.dumps(manifest))

    return damage


def _symlink_model(folder: Path) -> None:
    real = folder.parent / "elsewhere.onnx"
    real.write_bytes((folder / "model.onnx").read_bytes())
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").symlink_to(real)


def _file_instead_of_folder(folder: Path) -> None:
    shutil.rmtree(folder)
    folder.write_bytes(b"x")


DAMAGE = {
    "flipped byte": _flip_a_byte,
    "truncated model": lambda f: (f / "model.onnx").write_bytes(b"model"),
    "missing model": lambda f: (f / "model.onnx").unlink(),
    "missing manifest": lambda f: (f / MANIFEST_NAME).unlink(),
    "manifest not JSON": lambda f: (f / MANIFEST_NAME).write_text('{"format": '),
    "manifest a list": lambda f: (f / MANIFEST_NAME).write_text("[]"),
    "manifest too large": lambda f: (f / MANIFEST_NAME).write_text(" " * 100_000 + "{}"),
    "wrong key": _edit_manifest(lambda m: m["key"].update(runtime="torch-y+opset18")),
    "wrong hash": _edit_manifest(lambda m: m["files"]["model.onnx"].update(sha256="0" * 64)),
    "files renamed": _edit_manifest(lambda m: m.update(files={"other.onnx": m["files"]["model.onnx"]})),
    "model is a symlink": _symlink_model,
    "entry is a file": _file_instead_of_folder,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_entry_is_rebuilt_never_trusted(tmp_path, damage):
    calls: list[int] = []
    folder = cached_entry(KEY, ("model.onnx",), _builder(calls), cache_dir=tmp_path)
    DAMAGE[damage](folder)
    again = cached_entry(KEY, ("model.onnx",), _builder(calls), cache_dir=tmp_path)
    assert calls == [1, 1] and again == folder
    assert (again / "model.onnx").read_bytes() == b"model bytes" and not (again / "model.onnx").is_symlink()
    assert engine_cache.entry_is_valid(again, KEY, ("model.onnx",), engine_cache.seal_key(again.parent))


def test_different_keys_get_different_entries(tmp_path):
    calls: list[int] = []
    other = EntryKey("def456", "onnx", "fp32", "torch-x+opset18")
    a = cached_entry(KEY, ("model.onnx",), _builder(calls, b"a"), cache_dir=tmp_path)
    b = cached_entry(other, ("model.onnx",), _builder(calls, b"b"), cache_dir=tmp_path)
    assert a != b and (a / "model.onnx").read_bytes() == b"a" and (b / "model.onnx").read_bytes() == b"b"


def test_cache_location_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(engine_cache.CACHE_ENV, str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env" / "engines"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg" / "engines"
    monkeypatch.delenv(engine_cache.CACHE_ENV)
    from platformdirs import user_cache_dir

    assert cache_root() == Path(user_cache_dir("aigdetect")) / "engines"


def test_an_unwritable_cache_is_an_input_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    with pytest.raises(InputError, match="engine cache") as info:
        cached_entry(KEY, ("model.onnx",), _builder([]), cache_dir=blocker / "cache")
    assert "\n" not in str(info.value)


@pytest.mark.skipif("onnxruntime" not in INSTALLED, reason="onnxruntime not installed")
def test_export_runs_once_per_detector_and_again_after_corruption(detector, pixels, reference, tmp_path, monkeypatch):
    exports = []
    real = backends.write_onnx_graph
    monkeypatch.setattr(backends, "write_onnx_graph", lambda *a, **k: (exports.append(1), real(*a, **k))[1])
    config = EngineConfig("onnxruntime")
    first = open_runner(detector, config, cache_dir=tmp_path)
    open_runner(detector, config, cache_dir=tmp_path)
    assert exports == [1]
    (entry,) = [p for p in (tmp_path / "engines").iterdir() if p.is_dir()]
    with open(entry / "model.onnx", "r+b") as handle:
        handle.seek(-64, os.SEEK_END)
        handle.write(b"\0" * 64)
    rebuilt = open_runner(detector, config, cache_dir=tmp_path)
    assert exports == [1, 1]
    np.testing.assert_allclose(rebuilt.logits(pixels), first.logits(pixels), rtol=0, atol=0)
    np.testing.assert_allclose(rebuilt.logits(pixels), reference, rtol=0, atol=1e-5)

    other = make_tiny_detector(seed=6)
    open_runner(other, config, cache_dir=tmp_path)
    assert exports == [1, 1, 1] and len([p for p in (tmp_path / "engines").iterdir() if p.is_dir()]) == 2


# The cache is private, sealed, and rebuilt once when the runtime cannot load it.


def test_cache_folders_are_created_private_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        folder = cached_entry(KEY, ("model.onnx",), _builder([]), cache_dir=tmp_path / "new" / "cache")
    finally:
        os.umask(previous)
    for path in (tmp_path / "new", tmp_path / "new" / "cache", folder.parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    assert stat.S_IMODE((folder.parent / engine_cache.SEAL_KEY_NAME).stat().st_mode) == 0o600


@pytest.mark.parametrize("level", ["cache", "engines"])
def test_a_cache_writable_by_others_is_refused_naming_the_folder(tmp_path, level):
    cached_entry(KEY, ("model.onnx",), _builder([]), cache_dir=tmp_path / "cache")
    folder = tmp_path / "cache" if level == "cache" else tmp_path / "cache" / "engines"
    folder.chmod(0o777)
    with pytest.raises(InputError) as info:
        cached_entry(KEY, ("model.onnx",), _builder([]), cache_dir=tmp_path / "cache")
    assert str(folder) in str(info.value) and "writable by other users (mode 777)" in str(info.value)
    assert "\n" not in str(info.value)


def test_a_cache_owned_by_another_user_is_refused(tmp_path, monkeypatch):
    cached_entry(KEY, ("model.onnx",), _builder([]), cache_dir=tmp_path / "cache")
    me = os.geteuid()
    monkeypatch.setattr(os, "geteuid", lambda: me + 1)  # the folders now belong to someone else
    with pytest.raises(InputError, match=rf"the engine cache {tmp_path / 'cache'} belongs to another user \(uid {me}\)"):
        cached_entry(KEY, ("model.onnx",), _builder([]), cache_dir=tmp_path / "cache")


def test_the_cli_refuses_a_shared_cache_in_one_line(tmp_path, tiny_checkpoint, monkeypatch):
    from typer.testing import CliRunner

    from aigdetect.cli import app

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv(engine_cache.CACHE_ENV, str(shared))
    image = tmp_path / "a.png"
    Image.new("RGB", (40, 36), (1, 2, 3)).save(image)
    result = CliRunner().invoke(app, ["scan", str(image), "--checkpoint", str(tiny_checkpoint), "--backend", "onnxruntime",
                                      "--workers", "0", "--out", str(tmp_path / "r.csv")])  # fmt: skip
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert str(shared) in line and "writable by other users" in line


def _plant(folder: Path, payload: bytes) -> None:
    """Replace the entry's model and rewrite its manifest to match, as someone without the seal key would."""
    (folder / "model.onnx").write_bytes(payload)
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    manifest["files"]["model.onnx"] = {"size": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))


def test_a_planted_entry_whose_manifest_matches_is_rebuilt(tmp_path):
    calls: list[int] = []
    folder = cached_entry(KEY, ("model.onnx",), _builder(calls), cache_dir=tmp_path)
    _plant(folder, b"planted graph")
    assert not engine_cache.entry_is_valid(folder, KEY, ("model.onnx",), engine_cache.seal_key(folder.parent))
    again = cached_entry(KEY, ("model.onnx",), _builder(calls), cache_dir=tmp_path)
    assert calls == [1, 1] and (again / "model.onnx").read_bytes() == b"model bytes"


def test_entries_are_keyed_by_full_hashes():
    detector = make_tiny_detector(seed=5)
    digest = backends.detector_sha256(detector)
    assert len(digest) == 64 and int(digest, 16) >= 0
    with torch.no_grad():
        next(iter(detector.state_dict().values())).view(-1)[0] += 1e-3  # one value of one backbone tensor
    assert backends.detector_sha256(detector) != digest
    assert len(KEY.folder_name()) == 64 and KEY.folder_name() != EntryKey("abc123", "onnx", "fp32", "torch-y+opset18").folder_name()


@pytest.mark.skipif("onnxruntime" not in INSTALLED, reason="onnxruntime not installed")
def test_a_planted_graph_of_another_detector_is_refused(detector, pixels, reference, tmp_path, monkeypatch):
    config = EngineConfig("onnxruntime")
    open_runner(detector, config, cache_dir=tmp_path)
    (entry,) = [p for p in (tmp_path / "engines").iterdir() if p.is_dir()]
    planted = tmp_path / "planted.onnx"
    backends.write_onnx_graph(make_tiny_detector(seed=6).eval(), planted)
    _plant(entry, planted.read_bytes())
    exports = []
    real = backends.write_onnx_graph
    monkeypatch.setattr(backends, "write_onnx_graph", lambda *a, **k: (exports.append(1), real(*a, **k))[1])
    runner = open_runner(detector, config, cache_dir=tmp_path)
    assert exports == [1]
    np.testing.assert_allclose(runner.logits(pixels), reference, rtol=0, atol=1e-5)


@pytest.mark.skipif("onnxruntime" not in INSTALLED, reason="onnxruntime not installed")
def test_an_entry_the_runtime_cannot_load_is_rebuilt_once_with_a_note(detector, pixels, reference, tmp_path, monkeypatch, caplog):
    real = backends.write_onnx_graph
    exports = []

    def corrupt_first(model, path, **kwargs):
        exports.append(1)
        if len(exports) == 1:
            Path(path).write_bytes(b"\x08\x07 not a protobuf")  # sealed as built, yet no ONNX model
            return None
        return real(model, path, **kwargs)

    monkeypatch.setattr(backends, "write_onnx_graph", corrupt_first)
    with caplog.at_level("WARNING", logger="aigdetect.engine.backends"):
        runner = open_runner(detector, EngineConfig("onnxruntime"), cache_dir=tmp_path)
    assert exports == [1, 1]
    (note,) = [r.getMessage() for r in caplog.records]
    assert note.startswith("note: the cached onnxruntime engine could not be loaded (") and "rebuilding it" in note
    np.testing.assert_allclose(runner.logits(pixels), reference, rtol=0, atol=1e-5)


@pytest.mark.skipif("onnxruntime" not in INSTALLED, reason="onnxruntime not installed")
def test_an_entry_that_stays_unloadable_is_rebuilt_only_once(detector, tmp_path, monkeypatch):
    exports = []
    monkeypatch.setattr(backends, "write_onnx_graph", lambda model, path, **k: (exports.append(1), Path(path).write_bytes(b"junk")))
    with pytest.raises(Exception, match="(?i)protobuf|load"):
        open_runner(detector, EngineConfig("onnxruntime"), cache_dir=tmp_path)
    assert exports == [1, 1]
