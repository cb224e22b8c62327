"""SRGAN core: models, losses, metrics, bicubic, image I/O, config, checkpoints, training steps.

Plain PyTorch and NumPy: nothing here imports Ray or MLflow.
"""

from pathlib import Path

__version__ = "0.1.0"

ASSETS = Path(__file__).parent / "assets"  # data shipped with the package (Set5 for the default job)
DEFAULT_MODEL = ASSETS / "model"  # the trained generator shipped with the package
