"""What a torch checkpoint holds, read without unpickling it and without torch.

`torch.save` writes a zip archive whose `data.pkl` is a pickle of the saved object, with each
tensor's bytes in a separate entry. Unpickling can run code, and importing torch takes
seconds, so `slic inspect` walks the pickle's opcodes instead (`pickletools.genops`) with a
small stack machine that builds only plain values: dicts, lists, tuples, strings, numbers,
and a `TensorInfo` (dtype, shape) for each tensor. Nothing is imported or called; a global
it does not know stays an `Opaque` name.
"""

from __future__ import annotations

import pickletools
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.io.checkpoint_archive import check_archive, read_member
from stages.runtime.errors import ArtifactError

STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool",
}
TENSOR_REBUILDERS = {"torch._utils _rebuild_tensor_v2", "torch._utils _rebuild_tensor"}
DICT_CLASSES = {"collections OrderedDict", "builtins dict"}
# BatchNorm's statistics are buffers, not parameters
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


@dataclass(frozen=True)
class TensorInfo:
    """A tensor's dtype and shape, as stored (its values are not read)."""

    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """Number of elements: the product of `shape` (1 for a scalar)."""
        count = 1
        for size in self.shape:
            count *= size
        return count


@dataclass(frozen=True)
class Opaque:
    """A global the reader does not interpret (`module name`), or the result of calling it."""

    name: str


@dataclass(frozen=True)
class _Storage:
    dtype: str


class _Mark:
    """The MARK opcode's place on the stack."""


MARK = _Mark()


def _pop_to_mark(stack: list[Any], marks: list[int]) -> list[Any]:
    """Pop the items above the last MARK, and the MARK. `marks` holds the MARKs' places, so
    that a pickle of many marks costs no search of the stack for each (quadratic time)."""
    index = marks.pop()
    if index >= len(stack) or stack[index] is not MARK:
        raise ValueError("the pickle pops a MARK as a value")
    items = stack[index + 1:]
    del stack[index:]
    return items


def _call(function: Any, arguments: tuple) -> Any:
    """REDUCE, without calling anything: dict classes give a dict, tensor rebuilders a
    TensorInfo, every other global an Opaque."""
    name = function.name if isinstance(function, Opaque) else repr(function)
    if name in DICT_CLASSES:
        return {}
    if name in TENSOR_REBUILDERS and isinstance(arguments[0], _Storage):
        return TensorInfo(arguments[0].dtype, tuple(int(s) for s in arguments[2]))
    return Opaque(f"{name}(...)")


def _persistent(pid: Any) -> Any:
    """torch's persistent id of a tensor's storage: ('storage', type, key, location, numel)."""
    if isinstance(pid, tuple) and pid and pid[0] == "storage":
        kind = pid[1].name.split()[-1] if isinstance(pid[1], Opaque) else ""
        return _Storage(STORAGE_DTYPES.get(kind, kind.removesuffix("Storage").lower()))
    return Opaque("persistent id")


# Opcodes that push their argument as it is, and those that push a constant or a new
# empty container.
ARGUMENT_OPCODES = frozenset({
    "BININT", "BININT1", "BININT2", "LONG1", "LONG4", "INT", "LONG", "BINFLOAT", "FLOAT",
    "BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
    "BINSTRING", "STRING", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8"})
CONSTANT_OPCODES = {"NONE": lambda: None, "NEWTRUE": lambda: True, "NEWFALSE": lambda: False,
                    "EMPTY_DICT": dict, "EMPTY_LIST": list, "EMPTY_TUPLE": tuple,
                    "EMPTY_SET": set}


def read_pickle_structure(data: bytes) -> Any:
    """The object a pickle describes, built from plain values only (see the module text)."""
    stack: list[Any] = []
    marks: list[int] = []
    memo: dict[int, Any] = {}
    for op, argument, _ in pickletools.genops(data):
        name = op.name
        if name in ARGUMENT_OPCODES:
            stack.append(argument)
        elif name in CONSTANT_OPCODES:
            stack.append(CONSTANT_OPCODES[name]())
        elif name in {"PROTO", "FRAME"}:
            continue
        elif name == "MARK":
            marks.append(len(stack))
            stack.append(MARK)
        elif name in {"BINPUT", "LONG_BINPUT", "PUT"}:
            memo[int(argument)] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in {"BINGET", "LONG_BINGET", "GET"}:
            stack.append(memo[int(argument)])
        elif name in {"GLOBAL", "INST"}:
            stack.append(Opaque(str(argument)))
        elif name == "STACK_GLOBAL":
            attribute, module = stack.pop(), stack.pop()
            stack.append(Opaque(f"{module} {attribute}"))
        elif name in {"TUPLE1", "TUPLE2", "TUPLE3"}:
            size = int(name[-1])
            items = tuple(stack[-size:])
            del stack[-size:]
            stack.append(items)
        elif name == "TUPLE":
            stack.append(tuple(_pop_to_mark(stack, marks)))
        elif name == "LIST":
            stack.append(_pop_to_mark(stack, marks))
        elif name == "DICT":
            items = _pop_to_mark(stack, marks)
            stack.append(dict(zip(items[::2], items[1::2])))
        elif name == "APPEND":
            item = stack.pop()
            stack[-1].append(item)
        elif name == "APPENDS":
            items = _pop_to_mark(stack, marks)
            stack[-1].extend(items)
        elif name == "SETITEM":
            item_value, key = stack.pop(), stack.pop()
            _set_item(stack[-1], key, item_value)
        elif name == "SETITEMS":
            items = _pop_to_mark(stack, marks)
            for key, item_value in zip(items[::2], items[1::2]):
                _set_item(stack[-1], key, item_value)
        elif name == "ADDITEMS":
            items = _pop_to_mark(stack, marks)
            stack[-1].update(items)
        elif name == "REDUCE":
            arguments, function = stack.pop(), stack.pop()
            stack.append(_call(function, arguments))
        elif name == "NEWOBJ":
            arguments, cls = stack.pop(), stack.pop()
            stack.append(_call(cls, arguments))
        elif name in {"BINPERSID", "PERSID"}:
            stack.append(_persistent(stack.pop() if name == "BINPERSID" else argument))
        elif name == "BUILD":
            stack.pop()  # object state (an OrderedDict's metadata): not needed here
        elif name == "POP":
            stack.pop()
        elif name == "POP_MARK":
            _pop_to_mark(stack, marks)
        elif name == "DUP":
            stack.append(stack[-1])
        elif name == "STOP":
            return stack.pop()
        else:
            raise ValueError(f"pickle opcode {name} is not read")
    raise ValueError("the pickle has no STOP opcode")


def _set_item(target: Any, key: Any, value: Any) -> None:
    if isinstance(target, dict):
        target[key if isinstance(key, (str, int, float, bool, tuple)) or key is None
               else repr(key)] = value


def read_checkpoint_structure(path: Path) -> Any:
    """The saved object of a `torch.save` zip archive, as plain values and TensorInfo; an
    archive whose members would inflate out of proportion with the file is refused before its
    pickle is read (`checkpoint_archive`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            check_archive(path, archive)
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")
                       or n == "data.pkl"]
            if not pickles:
                raise ArtifactError(f"{path} is a zip archive without data.pkl: not a torch "
                                    "checkpoint")
            data = read_member(path, archive, pickles[0])
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError,
            RuntimeError) as error:  # NotImplementedError, RuntimeError: a method, a flag
        raise ArtifactError(f"{path} is not a torch checkpoint (a zip archive written by "
                            f"torch.save): {error}") from None
    try:
        return read_pickle_structure(data)
    except (ValueError, IndexError, KeyError, TypeError, AttributeError) as error:
        raise ArtifactError(f"cannot read the structure of {path} without unpickling it "
                            f"({error})") from None
    except RecursionError:  # a key nested thousands deep: hashing it recurses
        raise ArtifactError(f"cannot read the structure of {path} without unpickling it "
                            "(values nested too deeply)") from None


def tensor_counts(state: dict[str, Any]) -> dict[str, int]:
    """Tensors, parameters (values of tensors other than BatchNorm buffers) and all values
    of a state dict."""
    tensors = {k: v for k, v in state.items() if isinstance(v, TensorInfo)}
    return {"tensors": len(tensors),
            "parameters": sum(v.numel for k, v in tensors.items()
                              if not str(k).endswith(BUFFER_SUFFIXES)),
            "values": sum(v.numel for v in tensors.values())}
