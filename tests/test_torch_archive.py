"""PyTorch zip archives are read without running anything in them.

TorchScript archives made here by ``torch.jit.script`` / ``torch.jit.trace`` must read back exactly
as ``torch.jit.load(path).state_dict()`` reads them (``torch.jit.load`` serves only as the
independent reference, on files the test itself made); ``torch.save`` archives exactly as
``torch.load(weights_only=True)``. Archives whose objects need code, and damaged or bomb-shaped
ones, are refused in one line, and their payloads never run.
"""

from __future__ import annotations

import copy
import io
import os
import pickle
import shlex
import struct
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
import torch
from torch import nn

from aigdetect.errors import WeightsError
from aigdetect.formats.torch_archive import MAX_CODE_FILE_BYTES, read_torch_archive
from aigdetect.models.backbones import build_visual, load_backbone, resolve_backbone

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")

NEEDS_CODE = "is a TorchScript archive whose objects need their own code to load; aigdetect never runs code from a weights file"


# --- archives made by PyTorch -----------------------------------------------------------------


class Box:
    """A TorchScript class (not a module) holding a tensor: never part of a state dict."""

    def __init__(self, value: torch.Tensor) -> None:
        self.value = value


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 4, bias=False)
        self.register_buffer("mask", torch.triu(torch.ones(3, 3)), persistent=False)
        self.scale = torch.tensor(2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.ln(x)) * self.scale + self.mask.sum()


class Tower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Parameter(torch.randn(6, 4).t())
        self.class_embedding = nn.Parameter(torch.randn(4).half())
        self.blocks = nn.Sequential(Block(), Block())
        self.register_buffer("positions", torch.arange(5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(x) @ self.proj + self.class_embedding.float().sum() + self.positions.sum()


class ClipLike(nn.Module):
    """The shape of OpenAI's CLIP: a ``visual`` tower, fp16 and fp32 tensors, shared storages, odd attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.visual = Tower()
        self.token_embedding = nn.Embedding(5, 4)
        self.positional_embedding = nn.Parameter(torch.randn(8, 4).half())
        self.text_projection = nn.Parameter(self.positional_embedding.detach()[2:6, 1:3])
        self.tied = self.token_embedding.weight
        self.logit_scale = nn.Parameter(torch.tensor(2.5))
        self.register_buffer("input_resolution", torch.tensor(32))
        self.box = torch.jit.script(Box)(torch.ones(3))
        self.sizes: List[int] = [3, 4]
        self.weights: List[float] = [0.5]
        self.flags: List[bool] = [True]
        self.extra: List[torch.Tensor] = [torch.zeros(2)]
        self.names: Dict[str, int] = {"a": 1}
        self.pair: Tuple[int, str] = (1, "b")
        self.device = torch.device("cpu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x).sum() * self.logit_scale + self.box.value.sum() + self.extra[0].sum()


def _jit_state(path: Path) -> dict[str, torch.Tensor]:
    return torch.jit.load(str(path), map_location="cpu").state_dict()


def _assert_same_state(ours: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    assert list(ours) == list(reference)
    for key, expected in reference.items():
        assert ours[key].dtype == expected.dtype, key
        assert torch.equal(ours[key], expected), key


def _shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


def test_scripted_clip_like_tree_reads_as_torchscript_does(tmp_path):
    torch.manual_seed(3)
    module = ClipLike()
    path = tmp_path / "clip.pt"
    torch.jit.script(module).save(str(path))
    ours = read_torch_archive(path)
    _assert_same_state(ours, _jit_state(path))
    # Values are the module's own, not merely whatever both readers agree on.
    for key, value in module.state_dict().items():
        assert torch.equal(ours[key], value), key
    # Parameters and buffers only: a non-persistent buffer is one (TorchScript keeps it), a plain
    # tensor attribute, a tensor in a TorchScript class or list and a None bias are not.
    assert "visual.blocks.0.mask" in ours
    assert not any(k.endswith((".scale", "fc.bias")) or k.startswith(("box", "extra")) for k in ours)
    assert _shares_storage(ours["tied"], ours["token_embedding.weight"])
    assert {ours["positional_embedding"].dtype, ours["visual.proj"].dtype} == {torch.float16, torch.float32}
    assert _shares_storage(ours["text_projection"], ours["positional_embedding"])
    assert not ours["text_projection"].is_contiguous() and not ours["visual.proj"].is_contiguous()


class OpenAIWrapper(nn.Module):
    """OpenAI's layout around open_clip's tiny tower: ``visual.*`` next to text-side tensors."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual
        self.positional_embedding = nn.Parameter(torch.randn(8, 16))
        for name in ("input_resolution", "context_length", "vocab_size"):
            self.register_buffer(name, torch.tensor(32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image)


@pytest.fixture()
def openai_archive(tmp_path, tiny_config) -> tuple[Path, nn.Module]:
    torch.manual_seed(5)
    visual = build_visual(resolve_backbone(tiny_config))
    traced = torch.jit.trace(OpenAIWrapper(visual), torch.randn(1, 3, 32, 32))
    with torch.no_grad():
        for parameter in traced.parameters():
            if parameter.ndim >= 2:
                parameter.data = parameter.data.half()
    path = tmp_path / "ViT-tiny.pt"
    traced.save(str(path))
    return path, traced


def test_traced_open_clip_tower_reads_as_torchscript_does(openai_archive):
    path, traced = openai_archive
    ours = read_torch_archive(path)
    _assert_same_state(ours, _jit_state(path))
    assert ours["visual.conv1.weight"].dtype == torch.float16 and ours["visual.ln_pre.weight"].dtype == torch.float32
    assert torch.equal(ours["visual.conv1.weight"], traced.visual.conv1.weight.detach())


def test_openai_archive_loads_as_the_backbone(openai_archive, tiny_config):
    path, traced = openai_archive
    loaded = load_backbone(resolve_backbone(tiny_config), path)
    expected = {k[len("visual.") :]: v.float() for k, v in traced.state_dict().items() if k.startswith("visual.")}
    _assert_same_state(loaded.state_dict(), expected)


def test_torch_save_archive_reads_as_weights_only_load_does(tmp_path):
    layer = nn.Linear(3, 2)
    base = torch.randn(4, 6, dtype=torch.bfloat16)
    saved = {
        "state_dict": layer.state_dict(),
        "parameter": nn.Parameter(torch.randn(2, 2)),
        "base": base,
        "view": base[1:3, ::2],
        "same": base,
        "flags": torch.tensor([True, False, True]),
        "steps": [torch.arange(3), (1, 2.5, "x", None, b"raw")],
        "epoch": 7,
    }
    path = tmp_path / "checkpoint.pt"
    torch.save(saved, path)
    ours = read_torch_archive(path)
    reference = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(reference) and list(ours["state_dict"]) == ["weight", "bias"]
    for key in ("parameter", "base", "view", "same", "flags"):
        assert ours[key].dtype == reference[key].dtype and torch.equal(ours[key], reference[key]), key
    assert torch.equal(ours["state_dict"]["weight"], layer.weight.detach())
    assert torch.equal(ours["steps"][0], torch.arange(3)) and ours["steps"][1] == (1, 2.5, "x", None, b"raw")
    assert ours["epoch"] == 7
    assert _shares_storage(ours["view"], ours["base"]) and ours["same"] is ours["base"]


# --- archives that need code ------------------------------------------------------------------


class Evil(nn.Module):
    """Restores itself with TorchScript that writes a file: ``torch.jit.load`` runs it."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target
        self.weight = nn.Parameter(torch.ones(2))

    @torch.jit.export
    def __getstate__(self) -> Tuple[str, torch.Tensor, bool]:
        return (self.target, self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: Tuple[str, torch.Tensor, bool]) -> None:
        self.target = state[0]
        self.training = state[2]
        self.weight = state[1] + torch.from_file(self.target, shared=True, size=2, dtype=torch.uint8).fill_(33).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight


class EvilClip(nn.Module):
    def __init__(self, target: str) -> None:
        super().__init__()
        self.visual = Evil(target)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)


def _one_line_refusal(call, *args) -> str:
    with pytest.raises(WeightsError) as info:
        call(*args)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_setstate_code_is_refused_and_never_runs(tmp_path, tiny_config):
    target = tmp_path / "written-by-the-archive"
    path = tmp_path / "evil.pt"
    torch.jit.script(EvilClip(str(target))).save(str(path))
    message = _one_line_refusal(load_backbone, resolve_backbone(tiny_config), path)
    assert NEEDS_CODE in message and ".Evil restores itself with its own __setstate__)" in message
    assert not target.exists()
    # The payload is real: PyTorch's own loader runs it.
    torch.jit.load(str(path))
    assert target.read_bytes() == b"!!"


def _op_global(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def _op_string(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _calls(module: str, name: str, argument: str) -> bytes:
    """A protocol-2 pickle, by hand: ``module.name(argument)``."""
    return b"\x80\x02" + _op_global(module, name) + _op_string(argument) + b"\x85R."


class Payload:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


LOOP_CODE = b"class Loop(Module):\n  __parameters__ = []\n  __buffers__ = []\n"


def _write_archive(path: Path, pickle_bytes: bytes, entries: dict[str, bytes] | None = None, code: bytes | None = None) -> Path:
    """A zip laid out as PyTorch lays archives out; with ``code`` (as code/__torch__.py), a TorchScript one."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        if code is not None:
            archive.writestr("archive/constants.pkl", b"\x80\x02).")
            archive.writestr("archive/code/__torch__.py", code)
        for name, data in (entries or {}).items():
            archive.writestr(f"archive/{name}", data)
    return path


@pytest.mark.skipif(sys.platform == "win32", reason="the payload runs a POSIX shell command")
@pytest.mark.parametrize("torchscript", [True, False], ids=["torchscript", "torch.save"])
@pytest.mark.parametrize("protocol", [2, 4], ids=["GLOBAL", "STACK_GLOBAL"])
def test_globals_outside_the_allow_list_are_refused_and_never_run(tmp_path, torchscript, protocol):
    target = tmp_path / "pwned"
    command = f"touch {shlex.quote(str(target))}"
    payload = _calls("os", "system", command) if protocol == 2 else pickle.dumps(Payload(command), protocol=4)
    path = _write_archive(tmp_path / "payload.pt", payload, code=LOOP_CODE if torchscript else None)
    message = _one_line_refusal(read_torch_archive, path)
    if torchscript:
        module = "os" if protocol == 2 else os.system.__module__
        assert NEEDS_CODE in message and message.endswith(f"(it refers to {module}.system)")
    else:
        assert message.startswith(f"cannot read weights file {path}: it refers to ")
        assert "aigdetect never runs code from a weights file" in message
    assert not target.exists()
    # The payload is real: Python's unpickler runs it.
    pickle.loads(payload)
    assert target.exists()


def test_names_from_the_archive_are_escaped_in_messages(tmp_path):
    payload = b"\x80\x04" + _op_string("evil\x1b[2J\nmodule") + _op_string("name") + b"\x93."
    message = _one_line_refusal(read_torch_archive, _write_archive(tmp_path / "escape.pt", payload))
    assert "\x1b" not in message and r"'evil\x1b[2J\nmodule.name'" in message


def test_a_module_that_contains_itself_is_refused(tmp_path):
    loop = (
        b"\x80\x02"
        + _op_global("__torch__", "Loop")
        + b")\x81q\x00}("
        + _op_string("training")
        + b"\x88"
        + _op_string("child")
        + b"h\x00ub."
    )
    path = _write_archive(tmp_path / "loop.pt", loop, code=LOOP_CODE)
    assert "module tree loops" in _one_line_refusal(read_torch_archive, path)


def test_module_classes_must_be_declared(tmp_path):
    path = _write_archive(
        tmp_path / "undeclared.pt", b"\x80\x02" + _op_global("__torch__", "Other") + b")\x81}b.", code=LOOP_CODE
    )
    assert "declares no class __torch__.Other" in _one_line_refusal(read_torch_archive, path)


def _loop_with(attributes: bytes) -> bytes:
    """A pickle, by hand, of one ``__torch__.Loop`` object given ``attributes`` (SETITEMS pairs) by BUILD."""
    return b"\x80\x02" + _op_global("__torch__", "Loop") + b")\x81}(" + attributes + b"ub."


@pytest.mark.parametrize(
    ("code", "attributes", "expected"),
    [
        (b"class Loop(Module):\n  __buffers__ = []\n", b"", "does not declare its __parameters__ and __buffers__"),
        (b"class Loop(Module):\n  __parameters__ = [w]\n  __buffers__ = []\n", b"", "in a form TorchScript never writes"),
        (b"\xff\xfeclass", b"", "is not UTF-8 text"),
        (b"class Loop:\n  w : int\n", b"", "its root object is not a TorchScript module"),
        (b'class Loop(Module):\n  __parameters__ = ["w", ]\n  __buffers__ = []\n', _op_string("w") + b"K\x03", "w is declared"),
    ],
    ids=["no-lists", "bad-list", "not-utf8", "not-a-module", "parameter-not-a-tensor"],
)
def test_class_declarations_are_read_strictly(tmp_path, code, attributes, expected):
    path = _write_archive(tmp_path / "declared.pt", _loop_with(attributes), code=code)
    assert expected in _one_line_refusal(read_torch_archive, path)


def test_code_files_are_capped(tmp_path):
    """A few megabytes of code are matched line by line; a Python parser would need gigabytes for them."""
    attributes = _loop_with(_op_string("training") + b"\x88")
    at_cap = LOOP_CODE + b"x = 1\n" * ((MAX_CODE_FILE_BYTES - len(LOOP_CODE)) // 6)
    assert read_torch_archive(_write_archive(tmp_path / "at-cap.pt", attributes, code=at_cap)) == {}
    over = _write_archive(tmp_path / "over-cap.pt", attributes, code=at_cap + b"x = 1\n")
    assert f"over the {MAX_CODE_FILE_BYTES}-byte cap" in _one_line_refusal(read_torch_archive, over)


# --- damaged, hostile and unusual archives ----------------------------------------------------


class Storage:
    def __init__(self, key: str, storage_type: str, numel: int) -> None:
        self.key, self.storage_type, self.numel = key, storage_type, numel


class View:
    def __init__(self, storage: Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class Crafter(pickle.Pickler):
    """Pickles ``View``s as PyTorch does, ``_rebuild_tensor_v2`` of a storage, with any arguments."""

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", getattr(torch, obj.storage_type), obj.key, "cpu", obj.numel)
        return None

    def reducer_override(self, obj):
        if isinstance(obj, View):
            return torch._utils._rebuild_tensor_v2, (obj.storage, obj.offset, obj.size, obj.stride, False, OrderedDict())
        return NotImplemented


def _crafted(path: Path, root: object, entries: dict[str, bytes]) -> Path:
    buffer = io.BytesIO()
    Crafter(buffer, protocol=2).dump(root)
    return _write_archive(path, buffer.getvalue(), entries)


FOUR_FLOATS = {"data/0": struct.pack("<4f", 1, 2, 3, 4)}
STORE = Storage("0", "FloatStorage", 4)


@pytest.mark.parametrize(
    ("root", "entries", "expected"),
    [
        ({"w": View(STORE, 0, (3,), (2,))}, FOUR_FLOATS, "a tensor view reaches outside its storage 0"),
        ({"w": View(STORE, 4, (1,), (1,))}, FOUR_FLOATS, "a tensor view reaches outside its storage 0"),
        ({"w": View(STORE, 0, (2, 2), (2,))}, FOUR_FLOATS, "malformed size, stride or offset"),
        ({"w": View(STORE, 0, (1 << 20,), (0,))}, FOUR_FLOATS, "view their 16 stored bytes more than 4 times over"),
        ({"w": View(Storage("0", "FloatStorage", 5), 0, (4,), (1,))}, FOUR_FLOATS, "declares 5 torch.float32 elements"),
        ({"w": View(Storage("1", "FloatStorage", 4), 0, (4,), (1,))}, FOUR_FLOATS, "no record for storage 1"),
        ({"w": View(Storage("../0", "FloatStorage", 4), 0, (4,), (1,))}, FOUR_FLOATS, "malformed type, key or size"),
        ({"w": View(Storage("0", "QUInt8Storage", 16), 0, (4,), (1,))}, FOUR_FLOATS, "storage type torch.QUInt8Storage"),
        ({"w": View(Storage("0", "BoolStorage", 4), 0, (4,), (1,))}, {"data/0": b"\x00\x01\x02\x00"}, "bytes other than 0 and 1"),
        ({"w": View(STORE, 0, (4,), (1,))}, {**FOUR_FLOATS, "byteorder": b"middle"}, "byte order record says b'middle'"),
    ],
    ids=["stride-outside", "offset-outside", "rank-mismatch", "expanded-view", "size-mismatch", "missing-record",
         "path-key", "unknown-dtype", "bad-bool", "bad-byteorder"],
)  # fmt: skip
def test_crafted_tensors_are_checked_against_their_storage(tmp_path, root, entries, expected):
    path = _crafted(tmp_path / "crafted.pt", root, entries)
    message = _one_line_refusal(read_torch_archive, path)
    assert message.startswith(f"cannot read weights file {path}: ") and expected in message


def test_a_crafted_view_inside_its_storage_reads_back(tmp_path):
    path = _crafted(tmp_path / "crafted.pt", {"w": View(STORE, 1, (2,), (2,))}, FOUR_FLOATS)
    assert torch.equal(read_torch_archive(path)["w"], torch.tensor([2.0, 4.0]))


def _rewrite(source: Path, target: Path, replace: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            name = info.filename.split("/", 1)[1]
            new.writestr(info.filename, replace.get(name, old.read(info)))
    return target


def test_big_endian_archives_are_swapped(tmp_path):
    values = {
        "f": torch.randn(3, 2),
        "h": torch.randn(5).half(),
        "c": torch.randn(2, dtype=torch.complex64),
        "i": torch.arange(4),
    }
    little = tmp_path / "little.pt"
    torch.save(values, little)
    with zipfile.ZipFile(little) as archive:
        swapped = {"byteorder": b"big"}
        for key, tensor in enumerate(values.values()):
            unit = tensor.element_size() // (2 if tensor.is_complex() else 1)
            raw = bytearray(archive.read(f"little/data/{key}"))
            swapped[f"data/{key}"] = b"".join(raw[i : i + unit][::-1] for i in range(0, len(raw), unit))
    big = _rewrite(little, tmp_path / "big.pt", swapped)
    ours = read_torch_archive(big)
    for key, value in values.items():
        assert torch.equal(ours[key], value), key
    assert torch.equal(torch.load(big, weights_only=True)["c"], values["c"])


def test_legacy_torch_files_still_load_through_weights_only(tmp_path, tiny_config):
    reference = load_backbone(resolve_backbone(tiny_config), "none", seed=2)
    path = tmp_path / "legacy.pt"
    torch.save({f"visual.{k}": v for k, v in reference.state_dict().items()}, path, _use_new_zipfile_serialization=False)
    assert not zipfile.is_zipfile(path)
    _assert_same_state(load_backbone(resolve_backbone(tiny_config), path).state_dict(), reference.state_dict())


def test_zip_bomb_entries_are_refused_before_inflating(tmp_path):
    path = tmp_path / "bomb.pt"
    size = 64 << 20
    pickle_bytes = pickle.dumps(None, protocol=2)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        with archive.open("archive/data/0", "w") as entry:
            for _ in range(size >> 20):
                entry.write(bytes(1 << 20))
    assert path.stat().st_size < size // 100
    message = _one_line_refusal(read_torch_archive, path)
    assert "would inflate from" in message and f"to {size} bytes" in message and "zip bomb" in message


def test_overlapping_entries_are_refused(tmp_path):
    path = tmp_path / "overlap.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps(None, protocol=2))
        archive.writestr("archive/data/0", bytes(1 << 20))
        # A second directory entry for the same bytes: many such make a small file read as a huge one.
        twin = copy.copy(archive.getinfo("archive/data/0"))
        twin.filename = "archive/data/1"
        archive.filelist.append(twin)
    with zipfile.ZipFile(path) as archive:
        assert [info.header_offset for info in archive.infolist()[1:]] == [archive.getinfo("archive/data/0").header_offset] * 2
    assert "zip entries overlap one another" in _one_line_refusal(read_torch_archive, path)


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.999])
def test_truncated_archives_are_refused(tmp_path, cut):
    path = tmp_path / "cut.pt"
    torch.save({"w": torch.randn(64, 64)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    assert "truncated or damaged zip archive" in _one_line_refusal(read_torch_archive, path)


def test_damaged_storage_bytes_are_refused(tmp_path):
    path = tmp_path / "damaged.pt"
    torch.save({"w": torch.zeros(64)}, path)
    data = bytearray(path.read_bytes())
    start = data.index(bytes(256))
    data[start + 10] = 7
    path.write_bytes(bytes(data))
    assert "Bad CRC-32" in _one_line_refusal(read_torch_archive, path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is not a zip archive at all", "it is not a zip archive"),
        (b"", "it is not a zip archive"),
    ],
    ids=["text", "empty"],
)
def test_non_zip_files_are_refused(tmp_path, content, expected):
    path = tmp_path / "weights.pt"
    path.write_bytes(content)
    assert expected in _one_line_refusal(read_torch_archive, path)


def test_non_zip_and_damaged_files_fail_in_one_line_through_the_backbone(tmp_path, tiny_config):
    text = tmp_path / "text.pt"
    text.write_bytes(b"not weights")
    assert _one_line_refusal(load_backbone, resolve_backbone(tiny_config), text).startswith(f"cannot read weights file {text}")
    cut = tmp_path / "cut.pt"
    torch.save({"w": torch.randn(64, 64)}, cut)
    cut.write_bytes(cut.read_bytes()[:2000])
    assert "truncated or damaged zip archive" in _one_line_refusal(load_backbone, resolve_backbone(tiny_config), cut)


def test_zip_without_a_pickle_is_not_a_pytorch_file(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("folder/readme.txt", "hello")
    assert "without a data.pkl" in _one_line_refusal(read_torch_archive, path)


def test_oversized_pickles_are_refused(tmp_path, monkeypatch):
    path = tmp_path / "large.pt"
    torch.save({"w": list(range(1000))}, path)
    monkeypatch.setattr("aigdetect.formats.torch_archive.MAX_PICKLE_BYTES", 100)
    assert "over the 100-byte cap" in _one_line_refusal(read_torch_archive, path)


@pytest.mark.skipif(sys.platform == "win32", reason="no FIFOs on Windows")
def test_special_files_are_refused(tmp_path):
    fifo = tmp_path / "weights.pt"
    os.mkfifo(fifo)
    assert "not a regular file" in _one_line_refusal(read_torch_archive, fifo)
