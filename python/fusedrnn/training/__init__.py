"""The training toolkit: ``Sequential``, ``fit``/``evaluate`` and checkpoints."""

from fusedrnn.training.checkpoint import (Checkpoint, CheckpointError, load_checkpoint, model_from_config, register_model,
                                         resume_training, save_checkpoint)
from fusedrnn.training.fit import (History, binary_accuracy_from_logits, evaluate, fit,
                                   sparse_categorical_accuracy, train_step)
from fusedrnn.training.sequential import Sequential

__all__ = ["Checkpoint", "CheckpointError", "History", "Sequential", "binary_accuracy_from_logits", "evaluate",
           "fit", "load_checkpoint", "model_from_config", "register_model", "resume_training",
           "save_checkpoint", "sparse_categorical_accuracy", "train_step"]
