"""Checkpoints: a model's architecture and weights, the optimizer's state and task metadata in
one ``.npz`` file, written atomically (a crash mid-save leaves the previous checkpoint intact).

Layout: arrays ``layer{i}/w{j}`` (weights of layer i in get_weights() order), ``optimizer/<key>``
(the optimizer's get_state()), and ``__header__``: UTF-8 JSON with the format tag, the model's
get_config(), the optimizer's class and config, and ``meta`` (whatever the task needs to use
the model later: a vocabulary, a word index, the training history). Nothing is pickled: a
checkpoint from an untrusted source cannot run code when loaded.
"""

from __future__ import annotations

import importlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Union

import numpy as np

from fusedrnn.io_utils import atomic_write
from fusedrnn.training.fit import History
from fusedrnn.training.sequential import Sequential

PathLike = Union[str, "os.PathLike[str]"]
FORMAT = "fusedrnn-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is not a readable fusedrnn checkpoint (corrupt, truncated or of another kind)."""


@dataclass
class Checkpoint:
    """What :func:`load_checkpoint` returns."""

    model: Any  # a Sequential or a registered model class
    optimizer: Optional[Any] = None
    meta: Dict[str, Any] = field(default_factory=dict)


def _layer_classes() -> Dict[str, type]:
    from fusedrnn import layers

    return {name: getattr(layers, name) for name in getattr(layers, "__all__", []) if isinstance(getattr(layers, name), type)}


_MODEL_CLASSES: Dict[str, type] = {}
# fusedrnn's own modules that register model classes, imported when a checkpoint names a class
# not registered yet (so that load_checkpoint works without importing the task first).
_BUILTIN_MODEL_MODULES = ("fusedrnn.tasks.seq2seq",)


def register_model(cls: type) -> type:
    """Class decorator: lets checkpoints rebuild a model class other than Sequential. The class
    needs ``layers`` (each with get_weights/set_weights), ``get_config()`` and a classmethod
    ``from_config(config)`` that makes the model, unbuilt or built."""
    _MODEL_CLASSES[cls.__name__] = cls
    return cls


def layer_from_spec(spec: Dict[str, Any], where: str = "layer") -> Any:
    """A layer from ``{'class': name, 'config': {...}}`` (as Sequential.get_config lists them)."""
    cls = _layer_classes().get(spec.get("class"))
    if cls is None:
        raise CheckpointError(f"{where}: unknown layer class {spec.get('class')!r}")
    return cls.from_config(spec["config"]) if hasattr(cls, "from_config") else cls(**spec["config"])


def _optimizer_classes() -> Dict[str, type]:
    from fusedrnn import optimizers

    return {name: cls for name, cls in vars(optimizers).items()
            if isinstance(cls, type) and callable(getattr(cls, "apply", None)) and not name.startswith("_")}


def save_checkpoint(path: PathLike, model: Any, optimizer: Optional[Any] = None,
                    meta: Optional[Dict[str, Any]] = None) -> None:
    """Writes `model` (built; a Sequential or a :func:`register_model` class), `optimizer`
    (optional) and `meta` (JSON-serialisable) to `path`, atomically."""
    arrays: Dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        for j, w in enumerate(layer.get_weights()):
            arrays[f"layer{i}/w{j}"] = np.asarray(w)
    header: Dict[str, Any] = {"format": FORMAT, "version": VERSION, "model_class": type(model).__name__,
                              "model": model.get_config(), "meta": meta or {}}
    if optimizer is not None:
        header["optimizer"] = {"class": type(optimizer).__name__, "config": optimizer.get_config()}
        for key, value in optimizer.get_state().items():
            arrays[f"optimizer/{key}"] = np.asarray(value)
    try:
        text = json.dumps(header)
    except TypeError as err:
        raise TypeError(f"meta: must be JSON-serialisable ({err})") from None
    arrays["__header__"] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def model_from_config(config: Dict[str, Any], model_class: str = "Sequential") -> Any:
    """An unbuilt model from its get_config(): a Sequential, or a class registered with
    :func:`register_model`."""
    if model_class != "Sequential":
        if model_class not in _MODEL_CLASSES:
            for module in _BUILTIN_MODEL_MODULES:
                importlib.import_module(module)
        cls = _MODEL_CLASSES.get(model_class)
        if cls is None:
            raise CheckpointError(f"model: unknown model class {model_class!r}")
        return cls.from_config(config)
    layers = [layer_from_spec(spec, f"layers[{k}]") for k, spec in enumerate(config.get("layers", []))]
    return Sequential(layers, name=config.get("name", "sequential"))


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Reads a checkpoint written by :func:`save_checkpoint`.

    Raises FileNotFoundError when `path` does not exist and :class:`CheckpointError` when it is
    not a valid checkpoint (the message names the file and what is wrong).
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint: {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            files = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise CheckpointError(f"checkpoint: {path} is not a readable fusedrnn checkpoint ({err})") from None
    if "__header__" not in files:
        raise CheckpointError(f"checkpoint: {path} has no fusedrnn header (not a fusedrnn checkpoint)")
    try:
        header = json.loads(files.pop("__header__").tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint: {path} has a corrupt header ({err})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint: {path} is not a fusedrnn checkpoint")
    if int(header.get("version", 0)) > VERSION:
        raise CheckpointError(f"checkpoint: {path} was written by a newer fusedrnn (format version "
                              f"{header['version']}); upgrade fusedrnn to read it")
    model = model_from_config(header["model"], header.get("model_class", "Sequential"))
    for i, layer in enumerate(model.layers):
        weights = []
        j = 0
        while f"layer{i}/w{j}" in files:
            weights.append(files[f"layer{i}/w{j}"])
            j += 1
        if weights:
            try:
                layer.set_weights(weights)
            except (ValueError, TypeError) as err:
                raise CheckpointError(f"checkpoint: {path}: layer {i} ({layer.name}): {err}") from None
    optimizer = None
    if "optimizer" in header:
        spec = header["optimizer"]
        cls = _optimizer_classes().get(spec.get("class"))
        if cls is None:
            raise CheckpointError(f"checkpoint: {path}: unknown optimizer class {spec.get('class')!r}")
        optimizer = cls(**spec["config"])
        state = {k[len("optimizer/"):]: v for k, v in files.items() if k.startswith("optimizer/")}
        if state:
            optimizer.set_state(state)
    return Checkpoint(model, optimizer, header.get("meta", {}))


def resume_training(path: PathLike, model: Any, optimizer: Any, *, task: str, config: Dict[str, Any]) -> History:
    """Continues an interrupted run: copies the weights and optimizer state of the checkpoint
    at `path` into `model` and `optimizer` (both freshly made by the task) and returns the
    training history so far (``History.epochs`` = epochs already done).

    The checkpoint's ``meta`` must name the same `task` and hold the same `config` (a dict of
    the task's settings) apart from ``epochs``; otherwise ValueError says which settings differ,
    since continuing with other data or shapes would silently train something else.
    """
    ckpt = load_checkpoint(path)
    if ckpt.meta.get("task") != task:
        raise ValueError(f"checkpoint: {path} is a {ckpt.meta.get('task', 'unknown')!r} checkpoint, not a {task} one")
    saved = {k: v for k, v in ckpt.meta.get("config", {}).items() if k != "epochs"}
    wanted = {k: v for k, v in json.loads(json.dumps(config)).items() if k != "epochs"}
    differ = sorted(k for k in set(saved) | set(wanted) if saved.get(k) != wanted.get(k))
    if differ:
        listed = ", ".join(f"{k}: {saved.get(k)!r} there, {wanted.get(k)!r} now" for k in differ)
        raise ValueError(f"checkpoint: {path} was trained with other settings ({listed}); give the same ones "
                         "to resume, or start afresh without resuming")
    if len(ckpt.model.layers) != len(model.layers):
        raise CheckpointError(f"checkpoint: {path} has {len(ckpt.model.layers)} layers, the model {len(model.layers)}")
    for i, (dst, src) in enumerate(zip(model.layers, ckpt.model.layers)):
        try:
            dst.set_weights(src.get_weights())
        except (ValueError, TypeError) as err:
            raise CheckpointError(f"checkpoint: {path}: layer {i} ({dst.name}): {err}") from None
    if ckpt.optimizer is not None and optimizer is not None:
        optimizer.set_state(ckpt.optimizer.get_state())
    history = History()
    history.history = {k: [float(v) for v in values] for k, values in ckpt.meta.get("history", {}).items()}
    return history
