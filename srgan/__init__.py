"""SRGAN core: models, losses, metrics, bicubic, image I/O, config, checkpoints, training steps.

Plain PyTorch and NumPy: nothing here imports Ray or MLflow.
"""

from pathlib import Path

__version__ = "0.1.0"

ASSETS = Path(__file__).parent / "assets"  # data shipped with the package (Set5 for the default job)
DEFAULT_MODEL = ASSETS / "model"  # the trained SRResNet shipped with the package (see its MODEL_CARD.md)
# Models a user names by word: `--model default` (SRResNet, the PSNR model) or `--model srgan`.
SHIPPED_MODELS = {"default": DEFAULT_MODEL, "srgan": ASSETS / "model-srgan"}


class UserError(ValueError):
    """An input from the user (a file, a flag, a config value) that cannot work as given: the CLI prints
    it as one line and exits with code 2. Every such error of the project derives from this."""
