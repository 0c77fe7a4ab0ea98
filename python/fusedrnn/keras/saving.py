"""Load a model saved with Keras's stock layers into fusedrnn's drop-in layers.

``fusedrnn.keras.load_model("m.keras")`` loads a ``.keras`` file whose model uses
``keras.layers.SimpleRNN``/``LSTM``/``GRU`` (and ``Attention``/``AdditiveAttention`` where
``fusedrnn.keras`` provides them) with each of those layers built as the fusedrnn class of the
same name: same config, same weights, and the optimizer state and compile settings the file holds.

Keras resolves a built-in layer by its module path before it looks at ``custom_objects``, so a
``custom_objects`` mapping cannot swap a built-in class. This loader instead rewrites the
model's ``config.json`` inside a temporary copy of the archive (each matching layer's
``module``/``registered_name`` point at the registered fusedrnn class; nothing else changes,
including the weights file) and hands that copy to ``keras.models.load_model``.

A model saved with fusedrnn layers needs nothing of this: ``keras.models.load_model`` loads it
once ``fusedrnn.keras`` is imported (the classes are registered as ``fusedrnn>LSTM`` etc.).
Subclassed models build their layers in their own ``__init__``: change the import there.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any, Dict

import keras

__all__ = ["drop_in_classes", "load_model"]

_CONFIG = "config.json"


def drop_in_classes() -> Dict[str, type]:
    """Keras class name -> the fusedrnn.keras class that replaces it."""
    import fusedrnn.keras as fk

    names = ("SimpleRNN", "LSTM", "GRU", "Attention", "AdditiveAttention")
    return {name: getattr(fk, name) for name in names if hasattr(fk, name)}


def _swap(node: Any, classes: Dict[str, type]) -> int:
    """Point every serialized stock layer in ``classes`` at its fusedrnn class; count them."""
    count = 0
    if isinstance(node, dict):
        name, module = node.get("class_name"), node.get("module")
        if (name in classes and isinstance(module, str) and (module == "keras.layers" or module.startswith("keras.src"))
                and isinstance(node.get("config"), dict)):
            cls = classes[name]
            node["module"] = cls.__module__
            node["registered_name"] = keras.saving.get_registered_name(cls)
            count += 1
        for value in node.values():
            count += _swap(value, classes)
    elif isinstance(node, list):
        for value in node:
            count += _swap(value, classes)
    return count


def load_model(filepath: str, custom_objects: Any = None, compile: bool = True, safe_mode: bool = True) -> Any:
    """``keras.models.load_model(filepath, ...)`` with stock SimpleRNN/LSTM/GRU layers (and
    Attention/AdditiveAttention where available) built as the fusedrnn.keras classes.

    ``filepath``: a ``.keras`` archive (Keras 3's format). The file itself is not modified.
    """
    path = os.fspath(filepath)
    if not str(path).endswith(".keras"):
        raise ValueError(f"filepath: expected a Keras 3 '.keras' archive, got {path!r} "
                         "(re-save older formats with model.save('model.keras') first)")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"filepath: {path!r} is not a '.keras' archive (not a zip file)")
    with zipfile.ZipFile(path) as src:
        if _CONFIG not in src.namelist():
            raise ValueError(f"filepath: {path!r} holds no {_CONFIG}; is it a Keras 3 model archive?")
        config = json.loads(src.read(_CONFIG))
        _swap(config, drop_in_classes())
        with tempfile.TemporaryDirectory(prefix="fusedrnn_keras_") as tmp:
            copy = os.path.join(tmp, "model.keras")
            with zipfile.ZipFile(copy, "w", compression=zipfile.ZIP_DEFLATED) as dst:
                for item in src.infolist():
                    data = json.dumps(config).encode() if item.filename == _CONFIG else src.read(item)
                    dst.writestr(item, data)
            return keras.models.load_model(copy, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode)
