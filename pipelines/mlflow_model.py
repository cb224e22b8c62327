"""The MLflow model definition logged with each trained generator ("models from code": nothing is
pickled). The model's artifact `checkpoint` is an srgan checkpoint folder; serving loads it with
`srgan.checkpoint.load_generator` (safetensors)."""

from __future__ import annotations

import mlflow
import numpy as np


class CheckpointModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from srgan.checkpoint import load_generator

        self.g = load_generator(context.artifacts["checkpoint"])

    def predict(self, context, model_input: np.ndarray, params=None) -> np.ndarray:
        """uint8 RGB (H, W, 3) -> uint8 RGB (H*s, W*s, 3)."""
        from srgan.inference import upscale

        return upscale(self.g, np.asarray(model_input, dtype=np.uint8))


mlflow.models.set_model(CheckpointModel())
