"""A pickle interpreter for PyTorch files that builds only plain data, tensor references and stand-ins.

Python's unpickler imports whatever globals a pickle names and calls them, which is how a weights
file runs code. This one runs each opcode on a stack of its own: a global is looked up in a fixed
table of our own rebuilders (tensors, parameters, ordered dicts, TorchScript's typed lists), storage
types become dtypes, TorchScript classes (``__torch__.*``, only where allowed) become inert
``ScriptObject`` stand-ins that record their attributes, and anything else is refused. Tensors are
not made here: a ``TensorRef`` records a view, checked to lie inside its storage, for the caller to
make from the archive's bytes.
"""

from __future__ import annotations

import math
import pickletools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

_MAX_DIMS = 64
_MAX_EXTENT = 1 << 62

_STORAGE_DTYPES: dict[str, torch.dtype] = {
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
}


class NeedsCode(Exception):
    """Restoring the archive's objects would take code: its own, or a global we do not rebuild."""


class Malformed(Exception):
    """The archive is damaged, over a cap, or holds something that weights never need."""


@dataclass(frozen=True, eq=False)
class StorageRef:
    """A storage record the pickle points at, checked against its zip entry but not yet read."""

    key: str
    dtype: torch.dtype
    numel: int


@dataclass(frozen=True, eq=False)
class TensorRef:
    """A view into a storage, checked to lie inside it; made a tensor only if it is returned."""

    storage: StorageRef
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(eq=False)
class ScriptObject:
    """An inert stand-in for a TorchScript object: its class's name and the attributes saved with it."""

    qualified_name: str
    attributes: dict[str, Any] | None = None


@dataclass(frozen=True)
class _ScriptClass:
    qualified_name: str


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


@dataclass(frozen=True)
class _Rebuild:
    """A global the pickle may call, standing for our own function that rebuilds plain data."""

    function: Callable[[tuple[Any, ...]], Any]


def shown(text: str, limit: int = 200) -> str:
    """Text from the archive, fit for a one-line message: as is when printable and short, else escaped."""
    return text if text.isprintable() and len(text) <= limit else repr(text[:limit])


def _is_int(value: Any, low: int, high: int) -> bool:
    return type(value) is int and low <= value <= high


def _no_hooks(hooks: Any) -> bool:
    return isinstance(hooks, dict) and not hooks


def _tensor(args: tuple[Any, ...]) -> TensorRef:
    """``torch._utils._rebuild_tensor_v2``: a view whose every element lies inside its storage."""
    if len(args) not in (6, 7):
        raise Malformed("a tensor is rebuilt with the wrong number of arguments")
    storage, offset, size, stride, requires_grad, hooks = args[:6]
    if not isinstance(storage, StorageRef) or not isinstance(requires_grad, bool) or not _no_hooks(hooks):
        raise Malformed("a tensor is rebuilt from something other than a storage, or with backward hooks")
    if len(args) == 7 and args[6]:
        raise Malformed("a tensor carries metadata (conjugate or negative bits), which weights never need")
    if not (
        isinstance(size, tuple)
        and isinstance(stride, tuple)
        and len(size) == len(stride) <= _MAX_DIMS
        and all(_is_int(n, 0, _MAX_EXTENT) for n in size + stride)
        and _is_int(offset, 0, _MAX_EXTENT)
    ):
        raise Malformed("a tensor has a malformed size, stride or offset")
    if math.prod(size):
        inside = offset + sum((n - 1) * s for n, s in zip(size, stride)) < storage.numel
    else:
        inside = offset <= storage.numel
    if not inside:
        raise Malformed(f"a tensor view reaches outside its storage {storage.key} ({storage.numel} elements)")
    return TensorRef(storage, offset, size, stride)


def _parameter(args: tuple[Any, ...]) -> TensorRef:
    """``torch._utils._rebuild_parameter``: the data of an ``nn.Parameter`` saved with ``torch.save``."""
    if len(args) != 3 or not isinstance(args[0], TensorRef) or not _no_hooks(args[2]):
        raise Malformed("a parameter is rebuilt from something other than a tensor, or with backward hooks")
    return args[0]


def _empty_dict(args: tuple[Any, ...]) -> dict[Any, Any]:
    """``collections.OrderedDict()``; a plain dict keeps the order just as well."""
    if args:
        raise Malformed("an OrderedDict is built with arguments")
    return {}


def _list(args: tuple[Any, ...]) -> list[Any]:
    """TorchScript's typed lists (``torch.jit._pickle.build_intlist`` and kin): the list itself."""
    if len(args) != 1 or not isinstance(args[0], list):
        raise Malformed("a TorchScript list is built from something other than a list")
    return args[0]


def _tagged(args: tuple[Any, ...]) -> Any:
    """``torch.jit._pickle.restore_type_tag``: the value; its TorchScript type tag only names a type."""
    if len(args) != 2 or not isinstance(args[1], str):
        raise Malformed("a TorchScript value is tagged with something other than a type name")
    return args[0]


def _device(args: tuple[Any, ...]) -> str:
    """``torch.device``: its name as a string (``"cuda:0"``); weights are read to the CPU regardless."""
    if not (1 <= len(args) <= 2 and isinstance(args[0], str) and all(_is_int(a, 0, 1 << 16) for a in args[1:])):
        raise Malformed("a device is built from something other than a name and an index")
    return ":".join(str(a) for a in args)


def _bytes(args: tuple[Any, ...]) -> bytes:
    """``_codecs.encode(text, "latin1")``: how protocol 2 pickles ``bytes``."""
    if len(args) != 2 or not isinstance(args[0], str) or args[1] not in ("latin1", "latin-1"):
        raise Malformed("bytes are rebuilt from something other than latin-1 text")
    return args[0].encode("latin1")


_REBUILDS: dict[tuple[str, str], Callable[[tuple[Any, ...]], Any]] = {
    ("torch._utils", "_rebuild_tensor_v2"): _tensor,
    ("torch._utils", "_rebuild_parameter"): _parameter,
    ("collections", "OrderedDict"): _empty_dict,
    ("torch.jit._pickle", "build_intlist"): _list,
    ("torch.jit._pickle", "build_doublelist"): _list,
    ("torch.jit._pickle", "build_boollist"): _list,
    ("torch.jit._pickle", "build_tensorlist"): _list,
    ("torch.jit._pickle", "restore_type_tag"): _tagged,
    ("torch", "device"): _device,
    ("_codecs", "encode"): _bytes,
}


def _is_script_class(module: str, name: str) -> bool:
    parts = module.split(".")
    return parts[0] == "__torch__" and all(part.isidentifier() for part in parts) and name.isidentifier()


class _Machine:
    """Runs a pickle's opcodes on a stack of our own, so only data, references and stand-ins are built.

    Python's unpickler looks globals up and calls them; here every global maps to a value or a
    function of ours (``_REBUILDS``, storage types, TorchScript class stand-ins), and an opcode
    outside the table is refused rather than interpreted.
    """

    def __init__(self, storage_ref: Callable[[str, torch.dtype, int], StorageRef], torchscript: bool) -> None:
        self._storage_ref = storage_ref
        self._torchscript = torchscript
        self.stack: list[Any] = []
        self._metastack: list[list[Any]] = []
        self.memo: dict[int, Any] = {}

    def run(self, data: bytes) -> Any:
        for opcode, arg, position in pickletools.genops(data):
            handler = _OPCODES.get(opcode.name)
            if handler is None:
                raise Malformed(f"its pickle uses opcode {opcode.name}, which weights never need")
            try:
                handler(self, arg)
            except (IndexError, KeyError, TypeError):
                raise Malformed(f"its pickle is malformed at byte {position} ({opcode.name})") from None
        if len(self.stack) != 1 or self._metastack:
            raise Malformed("its pickle does not end with exactly one object")
        return self.stack[0]

    def push(self, value: Any) -> None:
        self.stack.append(value)

    def pop(self) -> Any:
        return self.stack.pop()

    def mark(self) -> None:
        self._metastack.append(self.stack)
        self.stack = []

    def pop_mark(self) -> list[Any]:
        items = self.stack
        self.stack = self._metastack.pop()
        return items

    def find_global(self, module: str, name: str) -> Any:
        rebuild = _REBUILDS.get((module, name))
        if rebuild is not None:
            return _Rebuild(rebuild)
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name.endswith("Storage"):
            raise Malformed(f"its tensors use storage type {shown(f'torch.{name}')}, whose dtype aigdetect does not read")
        if self._torchscript and _is_script_class(module, name):
            return _ScriptClass(f"{module}.{name}")
        raise NeedsCode(f"it refers to {shown(f'{module}.{name}')}")

    def persistent(self, pid: Any) -> StorageRef:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise Malformed("its pickle points at something other than a storage")
        _, kind, key, location, numel = pid
        if not (
            isinstance(kind, _StorageType)
            and isinstance(key, str)
            and key.isascii()
            and key.isdigit()
            and isinstance(location, str)
            and _is_int(numel, 0, _MAX_EXTENT)
        ):
            raise Malformed("its pickle points at a storage with a malformed type, key or size")
        return self._storage_ref(key, kind.dtype, numel)

    def reduce(self, function: Any, args: Any) -> Any:
        if not isinstance(function, _Rebuild) or not isinstance(args, tuple):
            raise Malformed("its pickle calls something that is not a rebuilder of tensors or plain data")
        return function.function(args)

    def new(self, cls: Any, args: Any) -> ScriptObject:
        if not isinstance(cls, _ScriptClass) or args != ():
            raise Malformed("its pickle creates an object that is not a TorchScript object")
        return ScriptObject(cls.qualified_name)

    def build(self, target: Any, state: Any) -> None:
        if isinstance(target, ScriptObject):
            if not isinstance(state, dict) or not all(isinstance(name, str) for name in state):
                raise NeedsCode(f"{target.qualified_name} restores itself with its own __setstate__")
            if target.attributes is not None:
                raise Malformed(f"{target.qualified_name} is given its attributes twice")
            target.attributes = dict(state)
        elif not (isinstance(target, dict) and isinstance(state, dict)):
            raise Malformed("its pickle sets the state of something that has none")
        # An OrderedDict's own attributes (a state dict's ``_metadata``) hold no tensors: dropped.


def _top(m: _Machine, kind: type) -> Any:
    target = m.stack[-1]
    if not isinstance(target, kind):
        raise Malformed(f"its pickle adds items to something that is not a {kind.__name__}")
    return target


def _append(m: _Machine, _: Any) -> None:
    value = m.pop()
    _top(m, list).append(value)


def _appends(m: _Machine, _: Any) -> None:
    items = m.pop_mark()
    _top(m, list).extend(items)


def _setitem(m: _Machine, _: Any) -> None:
    value, key = m.pop(), m.pop()
    _top(m, dict)[key] = value


def _setitems(m: _Machine, _: Any) -> None:
    items = m.pop_mark()
    _top(m, dict).update(_pairs(items))


def _stack_global(m: _Machine, _: Any) -> None:
    name, module = m.pop(), m.pop()
    if not (isinstance(module, str) and isinstance(name, str)):
        raise Malformed("its pickle names a global with something other than strings")
    m.push(m.find_global(module, name))


def _global(m: _Machine, arg: str) -> None:
    module, _, name = arg.partition(" ")
    m.push(m.find_global(module, name))


def _reduce(m: _Machine, _: Any) -> None:
    args = m.pop()
    m.push(m.reduce(m.pop(), args))


def _newobj(m: _Machine, _: Any) -> None:
    args = m.pop()
    m.push(m.new(m.pop(), args))


def _build(m: _Machine, _: Any) -> None:
    state = m.pop()
    m.build(m.stack[-1], state)


def _pop(m: _Machine, _: Any) -> None:
    if m.stack:
        m.pop()
    else:
        m.pop_mark()


def _pairs(items: list[Any]) -> dict[Any, Any]:
    return dict(zip(items[::2], items[1::2]))


_VALUE_OPCODES = (
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8",
)  # fmt: skip

_OPCODES: dict[str, Callable[[_Machine, Any], None]] = {
    **dict.fromkeys(_VALUE_OPCODES, _Machine.push),
    "PROTO": lambda m, _: None,
    "FRAME": lambda m, _: None,
    "STOP": lambda m, _: None,
    "NONE": lambda m, _: m.push(None),
    "NEWTRUE": lambda m, _: m.push(True),
    "NEWFALSE": lambda m, _: m.push(False),
    "MARK": lambda m, _: m.mark(),
    "POP": _pop,
    "POP_MARK": lambda m, _: m.pop_mark(),
    "DUP": lambda m, _: m.push(m.stack[-1]),
    "EMPTY_TUPLE": lambda m, _: m.push(()),
    "TUPLE1": lambda m, _: m.push((m.pop(),)),
    "TUPLE2": lambda m, _: m.push(tuple(reversed((m.pop(), m.pop())))),
    "TUPLE3": lambda m, _: m.push(tuple(reversed((m.pop(), m.pop(), m.pop())))),
    "TUPLE": lambda m, _: m.push(tuple(m.pop_mark())),
    "EMPTY_LIST": lambda m, _: m.push([]),
    "LIST": lambda m, _: m.push(m.pop_mark()),
    "APPEND": _append,
    "APPENDS": _appends,
    "EMPTY_DICT": lambda m, _: m.push({}),
    "DICT": lambda m, _: m.push(_pairs(m.pop_mark())),
    "SETITEM": _setitem,
    "SETITEMS": _setitems,
    "PUT": lambda m, index: m.memo.__setitem__(index, m.stack[-1]),
    "BINPUT": lambda m, index: m.memo.__setitem__(index, m.stack[-1]),
    "LONG_BINPUT": lambda m, index: m.memo.__setitem__(index, m.stack[-1]),
    "MEMOIZE": lambda m, _: m.memo.__setitem__(len(m.memo), m.stack[-1]),
    "GET": lambda m, index: m.push(m.memo[index]),
    "BINGET": lambda m, index: m.push(m.memo[index]),
    "LONG_BINGET": lambda m, index: m.push(m.memo[index]),
    "GLOBAL": _global,
    "STACK_GLOBAL": _stack_global,
    "BINPERSID": lambda m, _: m.push(m.persistent(m.pop())),
    "REDUCE": _reduce,
    "NEWOBJ": _newobj,
    "BUILD": _build,
}


def unpickle(data: bytes, storage_ref: Callable[[str, torch.dtype, int], StorageRef], *, torchscript: bool) -> Any:
    """The object a PyTorch pickle describes, built without running anything.

    Args:
        data: the pickle (an archive's ``data.pkl``).
        storage_ref: checks a storage the pickle points at (key, dtype, element count) against the
            archive and returns its reference; it must not read the storage.
        torchscript: whether ``__torch__.*`` classes may appear (as ``ScriptObject`` stand-ins).

    Raises:
        NeedsCode: a global outside the table, or a TorchScript object with its own ``__setstate__``.
        Malformed: an opcode outside the table, or anything malformed or out of bounds.
    """
    return _Machine(storage_ref, torchscript).run(data)
