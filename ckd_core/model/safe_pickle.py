"""Read third-party torch checkpoints (`.pth`, `.pth.tar`) without running their code.

Research checkpoints (OSTrack, DropTrack, the CKD authors') are `torch.save` pickles that hold,
next to the weights, instances of the training code's own classes
(`lib.train.admin.settings.Settings`, `lib.train.admin.stats.AverageMeter`, `argparse.Namespace`,
...). `torch.load(weights_only=True)` refuses those files; `weights_only=False` would import
the authors' modules and run whatever the pickle asks for. `safe_load` does neither:

1. It first tries `torch.load(path, map_location="cpu", weights_only=True)`: torch's own
   restricted loader, enough for files that hold only tensors and plain containers.
2. If that refuses a global, it loads again with `torch.load(..., weights_only=False,
   pickle_module=<this module>)`. torch then reads the zip (or the legacy pre-1.6 stream)
   and the tensor storages itself, but every pickle GLOBAL goes through our `Unpickler.find_class`
   (torch 2.x subclasses `pickle_module.Unpickler` and only resolves `*Storage` names before
   delegating to it; the legacy format also reads its header with `pickle_module.load`).

`Unpickler.find_class` never imports anything. It answers:
- an allow-listed global (tensor/parameter rebuild functions, storages, dtypes, `torch.device`,
  `torch.Size`, `collections.OrderedDict`, builtin containers, numpy arrays/scalars/dtypes,
  `datetime`, pure paths, protocol-2 `_codecs.encode` of bytes) -> the real object, or a
  checked wrapper that validates its arguments first;
- any other global -> an inert placeholder class (`Unloaded`). When the pickle only builds an
  instance of it (NEWOBJ, BUILD, SETITEMS, APPENDS: how plain objects such as `Settings` are
  pickled), the placeholder records the module, the name, the constructor arguments and the
  state it would have received; the original class is never imported and its `__setstate__`
  / `__reduce__` code never runs. When the pickle would CALL it (REDUCE, INST/OBJ with
  arguments: how `os.system`, `builtins.eval` or `subprocess.Popen` exploits work), the call
  raises `UnsafeCheckpointError` naming the global, before anything is executed.

TorchScript archives (which `torch.load(weights_only=False)` would hand to `torch.jit.load`)
are refused up front.
"""

from __future__ import annotations

import _compat_pickle
import datetime
import os
import pathlib
import pickle
import sys
import zipfile
from collections import Counter, OrderedDict, defaultdict, deque
from pathlib import Path
from typing import Any

import torch

__all__ = ["CheckpointReadError", "UnsafeCheckpointError", "Unloaded", "Unpickler", "load",
           "safe_load", "unloaded_globals"]


class UnsafeCheckpointError(ValueError):
    """The checkpoint's pickle would call code we do not allow; nothing was executed."""


class CheckpointReadError(ValueError):
    """The file is not a readable torch checkpoint (missing, truncated, not a pickle)."""


# ---------------------------------------------------------------------------------------------
# Placeholders for globals we do not load
# ---------------------------------------------------------------------------------------------

class _UnloadedType(type):
    """Metaclass of placeholders: calling one (REDUCE / INST) is refused."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise UnsafeCheckpointError(
            f"the checkpoint's pickle calls {cls.global_name}(...), which is not on the "
            f"allow-list of ckd_core.model.safe_pickle; the file was NOT loaded and nothing "
            f"was executed. If you trust the file, open it in a separate environment with "
            f"torch.load(..., weights_only=False) and re-save just its state dict "
            f"(torch.save(ckpt['net'], 'weights.pth'))")


class Unloaded(metaclass=_UnloadedType):
    """Inert stand-in for an instance of a class the checkpoint names but we never import.

    Attributes: `global_name` ("lib.train.admin.settings.Settings"), `args` / `kwargs` (what
    the pickle passed to `__new__`), `state` (what it passed to `__setstate__` / BUILD, usually
    the instance `__dict__`), `items` (SETITEMS, for dict subclasses), `list_items` (APPENDS).
    """

    global_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> "Unloaded":
        obj = object.__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = None
        obj.items = {}
        obj.list_items = []
        return obj

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:
        self.items[key] = value

    def append(self, value: Any) -> None:
        self.list_items.append(value)

    def extend(self, values: Any) -> None:
        self.list_items.extend(values)

    def __repr__(self) -> str:
        return f"<unloaded {self.global_name}>"


def _placeholder_class(module: str, name: str) -> type:
    full = f"{module}.{name}"
    return _UnloadedType(name, (Unloaded,), {"global_name": full, "__qualname__": name,
                                              "__module__": __name__})


# ---------------------------------------------------------------------------------------------
# Allow-list: real objects and argument-checking wrappers
# ---------------------------------------------------------------------------------------------

def _refuse(what: str) -> UnsafeCheckpointError:
    return UnsafeCheckpointError(f"the checkpoint's pickle {what}; the file was NOT loaded")


def _check_storage(storage: Any, fn: str) -> None:
    if not isinstance(storage, (torch.storage.TypedStorage, torch.UntypedStorage)):
        raise _refuse(f"passes a {type(storage).__name__} instead of a storage to {fn}")


def _check_no_hooks(hooks: Any, fn: str) -> None:
    if hooks:  # torch never serialises hooks (an empty OrderedDict); anything else is odd
        raise _refuse(f"attaches backward hooks in {fn}")


def _rebuild_tensor(storage, storage_offset, size, stride):
    _check_storage(storage, "_rebuild_tensor")
    return torch._utils._rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       metadata=None):
    _check_storage(storage, "_rebuild_tensor_v2")
    _check_no_hooks(backward_hooks, "_rebuild_tensor_v2")
    return torch._utils._rebuild_tensor_v2(storage, storage_offset, size, stride,
                                           requires_grad, OrderedDict(), metadata)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks,
                       dtype, metadata=None):
    _check_storage(storage, "_rebuild_tensor_v3")
    _check_no_hooks(backward_hooks, "_rebuild_tensor_v3")
    return torch._utils._rebuild_tensor_v3(storage, storage_offset, size, stride,
                                           requires_grad, OrderedDict(), dtype, metadata)


def _check_tensor(data: Any, fn: str) -> None:
    if not isinstance(data, torch.Tensor):
        raise _refuse(f"passes a {type(data).__name__} instead of a tensor to {fn}")


def _rebuild_parameter(data, requires_grad, backward_hooks):
    _check_tensor(data, "_rebuild_parameter")
    _check_no_hooks(backward_hooks, "_rebuild_parameter")
    return torch.nn.Parameter(data, requires_grad)


def _rebuild_parameter_with_state(data, requires_grad, backward_hooks, state):
    _check_tensor(data, "_rebuild_parameter_with_state")
    _check_no_hooks(backward_hooks, "_rebuild_parameter_with_state")
    param = torch.nn.Parameter(data, requires_grad)
    dicts = state if isinstance(state, tuple) else (state,)
    for d in dicts:
        for key, value in (d or {}).items():
            if not isinstance(key, str) or key.startswith("__"):
                raise _refuse(f"sets attribute {key!r} on a parameter")
            setattr(param, key, value)
    return param


def _rebuild_from_type_v2(func, new_type, args, state):
    if new_type not in (torch.Tensor, torch.nn.Parameter):
        raise _refuse(f"rebuilds a tensor as {getattr(new_type, 'global_name', new_type)!r}")
    ret = func(*args)  # func came through find_class: allowed, or a refusing placeholder
    if type(ret) is not new_type:
        ret = ret.as_subclass(new_type)
    if state:
        raise _refuse("restores Python attributes on a tensor")
    return ret


def _codecs_encode(text, encoding="utf-8"):
    # protocol 2 spells every `bytes` object as _codecs.encode(str, "latin1")
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _refuse(f"calls _codecs.encode with ({type(text).__name__}, {encoding!r})")
    return text.encode(encoding)


def _reconstructor(cls, base, state):
    # copyreg._reconstructor: how protocol 0/1 pickles plain objects
    if isinstance(cls, _UnloadedType) and base is object and state is None:
        return cls.__new__(cls)
    raise _refuse(f"calls copyreg._reconstructor({cls!r}, {base!r}, ...)")


def _defaultdict(default_factory=None, *args):
    if default_factory is not None and default_factory not in _BUILTINS.values():
        raise _refuse(f"builds a defaultdict whose factory is {default_factory!r}")
    return defaultdict(default_factory, *args)


def _numpy_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct

    def reconstruct(subtype, shape, dtype):
        if subtype is not np.ndarray:
            raise _refuse(f"reconstructs a numpy array of type {subtype!r}")
        return _reconstruct(np.ndarray, shape, dtype)

    def make_dtype(obj, align=False, copy=False):
        if not isinstance(obj, str):
            raise _refuse(f"builds a numpy dtype from a {type(obj).__name__}")
        return np.dtype(obj, align, copy)

    def scalar(dtype, data=None):
        if not isinstance(dtype, np.dtype) or dtype.hasobject:
            raise _refuse(f"builds a numpy scalar of dtype {dtype!r}")
        if not isinstance(data, bytes):
            raise _refuse("builds a numpy scalar from non-bytes data")
        return np.frombuffer(data, dtype=dtype, count=1)[0]

    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray,
                                         ("numpy", "dtype"): make_dtype}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        table[(mod, "_reconstruct")] = reconstruct
        table[(mod, "scalar")] = scalar
    return table


_BUILTINS: dict[str, Any] = {t.__name__: t for t in (
    dict, list, tuple, set, frozenset, bytearray, bytes, str, int, float, complex, bool,
    slice, range, object)}

_FIXED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("collections", "defaultdict"): _defaultdict,
    ("collections", "deque"): deque,
    ("collections", "Counter"): Counter,
    ("_codecs", "encode"): _codecs_encode,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter_with_state,
    ("torch._utils", "_rebuild_meta_tensor_no_storage"):
        torch._utils._rebuild_meta_tensor_no_storage,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch._tensor", "Tensor"): torch.Tensor,
    ("torch", "Tensor"): torch.Tensor,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "device"): torch.device,
    ("torch", "Size"): torch.Size,
    ("torch.serialization", "_get_layout"): torch.serialization._get_layout,
    ("datetime", "datetime"): datetime.datetime,
    ("datetime", "date"): datetime.date,
    ("datetime", "time"): datetime.time,
    ("datetime", "timedelta"): datetime.timedelta,
    ("datetime", "timezone"): datetime.timezone,
    # paths become pure paths: same text, no file-system access
    ("pathlib", "Path"): pathlib.PurePath,
    ("pathlib", "PosixPath"): pathlib.PurePosixPath,
    ("pathlib", "WindowsPath"): pathlib.PureWindowsPath,
    ("pathlib", "PurePath"): pathlib.PurePath,
    ("pathlib", "PurePosixPath"): pathlib.PurePosixPath,
    ("pathlib", "PureWindowsPath"): pathlib.PureWindowsPath,
    ("pathlib._local", "PosixPath"): pathlib.PurePosixPath,  # Python >= 3.13 spelling
    ("pathlib._local", "WindowsPath"): pathlib.PureWindowsPath,
}


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Undo the Python 2 names protocol < 3 pickles use (`__builtin__`, `copy_reg`, ...),
    as pickle's own find_class does with fix_imports."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


def _allowed_global(module: str, name: str) -> Any | None:
    """The object for an allow-listed global, or None. Never imports a module the pickle names
    (numpy, our own dependency, is imported for the numpy entries)."""
    if module == "builtins":
        return _BUILTINS.get(name)
    if (module, name) in _FIXED:
        return _FIXED[(module, name)]
    if module.startswith("numpy"):
        return _numpy_globals().get((module, name))
    if module == "torch":
        obj = vars(torch).get(name)  # not getattr: torch lazily imports submodules
        if isinstance(obj, (torch.dtype, torch.layout, torch.memory_format)):
            return obj
        if isinstance(obj, type) and name.endswith("Storage") and issubclass(
                obj, (torch.storage.TypedStorage, torch.UntypedStorage)):
            return obj
    return None


class Unpickler(pickle.Unpickler):
    """A pickle Unpickler that resolves only allow-listed globals (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._placeholders: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        module, name = _python3_name(module, name)
        obj = _allowed_global(module, name)
        if obj is not None:
            return obj
        key = (module, name)
        if key not in self._placeholders:
            self._placeholders[key] = _placeholder_class(module, name)
        return self._placeholders[key]


def load(file: Any, **kwargs: Any) -> Any:
    """`pickle.load` through the restricted `Unpickler` (torch's legacy format calls this)."""
    return Unpickler(file, **kwargs).load()


# ---------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------

def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith("constants.pkl") for n in zf.namelist())
    except zipfile.BadZipFile:
        return False


def _read_error(path: Path, exc: BaseException) -> CheckpointReadError:
    return CheckpointReadError(
        f"{path}: not a readable torch checkpoint ({type(exc).__name__}: "
        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}). The file may be truncated "
        f"or corrupt (compare its size/checksum with the source and download it again), or "
        f"it is not a torch.save file")


def safe_load(path: str | os.PathLike) -> Any:
    """Load a torch checkpoint on the CPU without importing or running any of its code.

    Returns what `torch.save` stored, with instances of non-allow-listed classes replaced by
    `Unloaded` placeholders (see `unloaded_globals`). Raises `UnsafeCheckpointError` if the
    pickle would call a non-allow-listed callable, `CheckpointReadError` if the file cannot
    be read, `FileNotFoundError` if it does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    if _is_torchscript(path):
        raise UnsafeCheckpointError(
            f"{path} is a TorchScript archive, not a checkpoint; export its state dict "
            f"(torch.jit.load(...).state_dict()) in an environment you trust")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass  # a global torch's loader does not allow: retry with ours
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError/EOFError/... here
        raise _read_error(path, exc) from exc
    try:
        return torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=sys.modules[__name__])
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f"{path}: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        raise _read_error(path, exc) from exc


def unloaded_globals(obj: Any) -> list[str]:
    """Sorted names of the classes that `safe_load` replaced by placeholders inside `obj`."""
    found: set[str] = set()
    seen: set[int] = set()
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, (torch.Tensor, str, bytes, int, float)):
            continue
        seen.add(id(o))
        if isinstance(o, Unloaded):
            found.add(o.global_name)
            stack.extend([o.args, o.kwargs, o.state, o.items, o.list_items])
        elif isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset, deque)):
            stack.extend(o)
    return sorted(found)


