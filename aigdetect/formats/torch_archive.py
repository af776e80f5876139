"""Tensors out of TorchScript and ``torch.save`` zip archives, without running anything they hold.

OpenAI's CLIP releases are TorchScript archives, and ``torch.jit.load`` runs the TorchScript inside
them (a class's ``__setstate__`` may write any file it likes), so it is never called here. Instead,
the archive's pickle runs on a small machine of our own (:mod:`.torch_pickle`) that builds only
plain data, references to tensors and inert stand-ins for TorchScript objects. Parameters and
buffers are told apart from other tensor attributes by the class declarations in the archive's
``code/`` folder (``__parameters__``, ``__buffers__``), which are matched as text and never run.

Every size is checked before anything is allocated: zip entries for expansion and overlap, each
storage against its record, each tensor view against its storage, and all views together against
the bytes actually stored. A storage is read only when a tensor that is returned needs it.
"""

from __future__ import annotations

import math
import os
import re
import sys
import zipfile
import zlib
from dataclasses import dataclass
from typing import Any, BinaryIO

import torch

from ..errors import InputFileError, WeightsError
from ..fileio import open_input
from .torch_pickle import Malformed, NeedsCode, ScriptObject, StorageRef, TensorRef, shown, unpickle

MAX_PICKLE_BYTES = 8 << 20
"""Largest ``data.pkl`` read (seconds of parsing at worst); OpenAI's ViT-L/14 needs well under 1 MiB."""
MAX_CODE_FILE_BYTES = 4 << 20
"""Largest ``code/`` file searched for class declarations; OpenAI's are a few kB each."""
MAX_EXPANSION = 20
"""Most a zip entry may grow when inflated; PyTorch stores entries uncompressed."""
MAX_VIEW_RATIO = 4
"""Most the returned tensors may view, as a multiple of the bytes stored (tied weights view some twice)."""

_SMALL = 4096
"""Entries, and view totals, this small are never refused as bombs."""
_MAX_DEPTH = 64
_MAX_MODULE_VISITS = 200_000
_CHUNK = 16 << 20
_ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class _ClassDeclaration:
    is_module: bool
    parameters: frozenset[str]
    buffers: frozenset[str]


_CLASS_HEADER = re.compile(r"class (\w+)(?:\((\w+)\))?:")
_NAME_LIST = re.compile(r'\s+(__parameters__|__buffers__) = \[((?:"[^"\\]*", )*)\]')


def _parse_declarations(source: bytes, path: str) -> dict[str, _ClassDeclaration]:
    """The classes a ``code/`` file declares: module or not, and their parameter and buffer names.

    TorchScript prints each class as ``class Name(Module):`` followed by one-line
    ``__parameters__ = ["a", "b", ]`` and ``__buffers__ = [...]`` declarations; only those lines
    are matched, so the code is neither run nor even parsed as Python (a parser would spend
    gigabytes on a hostile file of a few megabytes).
    """
    try:
        lines = source.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise Malformed(f"its {shown(path)} is not UTF-8 text") from None
    headers: dict[str, bool] = {}
    lists: dict[str, dict[str, frozenset[str]]] = {}
    current = None
    for line in lines:
        if not line.strip():
            continue
        if not line[0].isspace():
            header = _CLASS_HEADER.fullmatch(line.rstrip())
            current = header.group(1) if header else None
            if header:
                headers[current] = header.group(2) == "Module"
                lists[current] = {}
        elif current is not None and line.lstrip().startswith(("__parameters__", "__buffers__")):
            declared = _NAME_LIST.fullmatch(line.rstrip())
            if declared is None:
                raise Malformed(
                    f"class {current} in {shown(path)} declares its parameters or buffers in a form TorchScript never writes"
                )
            lists[current][declared.group(1)] = frozenset(re.findall(r'"([^"]*)"', declared.group(2)))
    classes = {}
    for name, is_module in headers.items():
        names = lists[name]
        if is_module and len(names) != 2:
            raise Malformed(f"module class {name} in {shown(path)} does not declare its __parameters__ and __buffers__")
        classes[name] = _ClassDeclaration(
            is_module, names.get("__parameters__", frozenset()), names.get("__buffers__", frozenset())
        )
    return classes


class _Archive:
    """One open PyTorch zip archive: its layout checked, its records read on demand and within caps."""

    def __init__(self, handle: BinaryIO, size_on_disk: int) -> None:
        try:
            self._zip = zipfile.ZipFile(handle)
        except zipfile.BadZipFile:
            handle.seek(0)
            truncated = handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
            raise Malformed("it is a truncated or damaged zip archive" if truncated else "it is not a zip archive") from None
        self._entries = {info.filename: info for info in self._zip.infolist()}
        self._check_layout(size_on_disk)
        self.prefix = self._find_prefix()
        self.torchscript = f"{self.prefix}/constants.pkl" in self._entries or any(
            name.startswith(f"{self.prefix}/code/") for name in self._entries
        )
        self._refs: dict[str, StorageRef] = {}
        self._storages: dict[str, torch.Tensor] = {}
        self._tensors: dict[int, torch.Tensor] = {}
        self._classes: dict[str, dict[str, _ClassDeclaration]] = {}
        self._stored = 0
        self._viewed = 0
        self._visits = 0
        self._byteorder = "little"

    def _check_layout(self, size_on_disk: int) -> None:
        """Refuse zip bombs before reading a byte: overlapping entries, and entries that inflate too far."""
        infos = self._zip.infolist()
        if len(self._entries) != len(infos):
            raise Malformed("it names one zip entry twice")
        if sum(info.compress_size for info in infos) > size_on_disk:
            raise Malformed("its zip entries overlap one another (a zip bomb)")
        for info in infos:
            if info.flag_bits & 0x1:
                raise Malformed(f"its zip entry {shown(info.filename)} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise Malformed(f"its zip entry {shown(info.filename)} uses compression method {info.compress_type}")
            if info.file_size > max(MAX_EXPANSION * info.compress_size, _SMALL):
                raise Malformed(
                    f"its zip entry {shown(info.filename)} would inflate from {info.compress_size} to {info.file_size} bytes"
                    f" (over {MAX_EXPANSION}x: a zip bomb)"
                )

    def _find_prefix(self) -> str:
        pickles = [name for name in self._entries if name.count("/") == 1 and name.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise Malformed(
                "it holds more than one data.pkl" if pickles else "it is a zip archive without a data.pkl, not a PyTorch file"
            )
        return pickles[0].removesuffix("/data.pkl")

    def read(self, name: str, limit: int) -> bytes:
        info = self._entries.get(name)
        if info is None:
            raise Malformed(f"it has no {shown(name)} record")
        if info.file_size > limit:
            raise Malformed(f"its {shown(name)} record is {info.file_size} bytes, over the {limit}-byte cap")
        with self._zip.open(info) as handle:
            data = handle.read(info.file_size + 1)
        if len(data) != info.file_size:
            raise Malformed(f"its {shown(name)} record is truncated")
        return data

    def load(self) -> Any:
        order_record = f"{self.prefix}/byteorder"
        if order_record in self._entries:
            order = self.read(order_record, 16)
            if order not in (b"little", b"big"):
                raise Malformed(f"its byte order record says {order!r}")
            self._byteorder = order.decode()
        root = unpickle(self.read(f"{self.prefix}/data.pkl", MAX_PICKLE_BYTES), self.storage_ref, torchscript=self.torchscript)
        if self.torchscript:
            return {name: self.tensor(ref) for name, ref in self.module_state(root).items()}
        return self.materialize(root, 0, {})

    def storage_ref(self, key: str, dtype: torch.dtype, numel: int) -> StorageRef:
        """Check a storage the pickle points at against its record; read nothing yet."""
        known = self._refs.get(key)
        if known is not None:
            if (known.dtype, known.numel) != (dtype, numel):
                raise Malformed(f"storage {key} is declared twice, with different types or sizes")
            return known
        info = self._entries.get(f"{self.prefix}/data/{key}")
        if info is None:
            raise Malformed(f"it has no record for storage {key}")
        needed = numel * dtype.itemsize
        if info.file_size != needed:
            raise Malformed(
                f"storage {key} declares {numel} {dtype} elements ({needed} bytes) but its record holds {info.file_size} bytes"
            )
        self._refs[key] = ref = StorageRef(key, dtype, numel)
        return ref

    def _storage(self, ref: StorageRef) -> torch.Tensor:
        flat = self._storages.get(ref.key)
        if flat is not None:
            return flat
        info = self._entries[f"{self.prefix}/data/{ref.key}"]
        raw = torch.empty(info.file_size, dtype=torch.uint8)
        window = memoryview(raw.numpy())
        done = 0
        with self._zip.open(info) as handle:
            while done < info.file_size:
                got = handle.readinto(window[done : done + _CHUNK])
                if not got:
                    raise Malformed(f"the record of storage {ref.key} is truncated")
                done += got
            handle.read(1)  # reaching the end makes zipfile check the record's CRC
        unit = ref.dtype.itemsize // (2 if ref.dtype.is_complex else 1)
        if self._byteorder != sys.byteorder and unit > 1:
            raw = raw.view(-1, unit).flip(1).reshape(-1)
        if ref.dtype == torch.bool and raw.numel() and int(raw.max()) > 1:
            raise Malformed(f"boolean storage {ref.key} holds bytes other than 0 and 1")
        self._stored += info.file_size
        self._storages[ref.key] = flat = raw.view(ref.dtype)
        return flat

    def tensor(self, ref: TensorRef) -> torch.Tensor:
        """The tensor a reference stands for, reading its storage on first use."""
        made = self._tensors.get(id(ref))
        if made is not None:
            return made
        flat = self._storage(ref.storage)
        self._viewed += math.prod(ref.size) * ref.storage.dtype.itemsize
        if self._viewed > MAX_VIEW_RATIO * self._stored + _SMALL:
            raise Malformed(f"its tensors view their {self._stored} stored bytes more than {MAX_VIEW_RATIO} times over")
        self._tensors[id(ref)] = made = torch.as_strided(flat, ref.size, ref.stride, ref.offset)
        return made

    def materialize(self, value: Any, depth: int, done: dict[int, Any]) -> Any:
        """A ``torch.save`` object with its tensor references made tensors; shared parts stay shared."""
        if isinstance(value, TensorRef):
            return self.tensor(value)
        if not isinstance(value, (dict, list, tuple)):
            return value
        if id(value) in done:
            return done[id(value)]
        if depth >= _MAX_DEPTH:
            raise Malformed(f"its data nests deeper than {_MAX_DEPTH} levels")
        if isinstance(value, tuple):
            done[id(value)] = made = tuple(self.materialize(item, depth + 1, done) for item in value)
            return made
        if isinstance(value, list):
            done[id(value)] = items = []
            items.extend(self.materialize(item, depth + 1, done) for item in value)
            return items
        done[id(value)] = mapping = {}
        for key, item in value.items():
            mapping[key] = self.materialize(item, depth + 1, done)
        return mapping

    def declaration(self, qualified_name: str) -> _ClassDeclaration:
        module, _, name = qualified_name.rpartition(".")
        path = f"{self.prefix}/code/{module.replace('.', '/')}.py"
        classes = self._classes.get(path)
        if classes is None:
            if path not in self._entries:
                raise Malformed(f"it declares no class {qualified_name} (no {shown(path)})")
            classes = self._classes[path] = _parse_declarations(self.read(path, MAX_CODE_FILE_BYTES), path)
        if name not in classes:
            raise Malformed(f"it declares no class {qualified_name} in {shown(path)}")
        return classes[name]

    def module_state(self, root: Any) -> dict[str, TensorRef]:
        """The flat state dict of a TorchScript module tree, in ``nn.Module.state_dict`` order.

        Each module contributes its parameters, then its buffers (its class's ``__parameters__``
        and ``__buffers__``, in attribute order, skipping ``None``), then its child modules'
        entries. Tensor attributes that are neither are left out, as TorchScript leaves them out.
        """
        if not isinstance(root, ScriptObject) or not self.declaration(root.qualified_name).is_module:
            raise Malformed("its root object is not a TorchScript module")
        state: dict[str, TensorRef] = {}
        self._walk(root, "", set(), state)
        return state

    def _walk(self, module: ScriptObject, prefix: str, active: set[int], state: dict[str, TensorRef]) -> None:
        self._visits += 1
        if self._visits > _MAX_MODULE_VISITS or len(active) >= _MAX_DEPTH or id(module) in active:
            raise Malformed("its module tree loops, nests too deep or is too large")
        if module.attributes is None:
            raise Malformed(f"its {module.qualified_name} object was never given its attributes")
        declaration = self.declaration(module.qualified_name)
        for names in (declaration.parameters, declaration.buffers):
            for name, value in module.attributes.items():
                if name not in names or value is None:
                    continue
                if not isinstance(value, TensorRef):
                    raise Malformed(f"{prefix}{name} is declared a parameter or buffer but is not a tensor")
                state[prefix + name] = value
        active.add(id(module))
        for name, value in module.attributes.items():
            if isinstance(value, ScriptObject) and self.declaration(value.qualified_name).is_module:
                self._walk(value, f"{prefix}{name}.", active, state)
        active.discard(id(module))


def is_zip_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` starts like a zip archive; a truncated archive still does."""
    handle, _ = open_input(path, follow_symlinks=True)
    with handle:
        return handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC


def read_torch_archive(path: str | os.PathLike[str]) -> Any:
    """Read a PyTorch zip archive (TorchScript or ``torch.save``) without running anything in it.

    Returns:
        For a TorchScript archive, the flat state dict that ``torch.jit.load(path).state_dict()``
        gives: parameters and buffers under the same keys, in the same order, with the dtypes as
        stored. For a ``torch.save`` archive, the saved object, as ``torch.load(path,
        weights_only=True)`` gives it, except that a ``torch.device`` comes back as its name.

    Raises:
        WeightsError: in one line, when the archive's objects need code to be restored (a global
            outside tensors and plain data, or a TorchScript class with its own ``__setstate__``),
            or when it is damaged, truncated, a zip bomb, or over a cap.
    """
    name = os.fspath(path)
    try:
        handle, info = open_input(path, follow_symlinks=True)
    except InputFileError as exc:
        raise WeightsError(f"cannot read weights file {name}: {exc.detail}") from None
    torchscript = False
    try:
        with handle:
            archive = _Archive(handle, info.st_size)
            torchscript = archive.torchscript
            return archive.load()
    except NeedsCode as exc:
        if torchscript:
            raise WeightsError(
                f"{name} is a TorchScript archive whose objects need their own code to load; "
                f"aigdetect never runs code from a weights file ({exc})"
            ) from None
        raise WeightsError(
            f"cannot read weights file {name}: {exc}, which is neither a tensor nor plain data; "
            "aigdetect never runs code from a weights file"
        ) from None
    except (Malformed, zipfile.BadZipFile, EOFError, OSError, ValueError, zlib.error) as exc:
        reason = str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot read weights file {name}: {reason}") from None
