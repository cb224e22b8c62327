"""SRGAN core: models, losses, metrics, bicubic, image I/O, config, checkpoints, training steps.

Plain PyTorch and NumPy: nothing here imports Ray or MLflow.
"""

from pathlib import Path

__version__ = "0.1.0"

ASSETS = Path(__file__).parent / "assets"  # data shipped with the package (Set5 for the default job)
DEFAULT_MODEL = ASSETS / "model"  # the trained SRResNet shipped with the package (see its MODEL_CARD.md)
# Models a user names by word (assets/model/MODEL_CARD.md): for clean bicubic LR, `default` (SRResNet,
# the PSNR model) and `srgan` (its GAN); for real photos (JPEG, noise, blur), `realworld` and
# `realworld-gan`, the same pair trained on degraded inputs, blind to what each input went through;
# and `auto` and `auto-gan`, `default` and `srgan` told each input's JPEG quality and noise
# (srgan.condition), read from its file.
SHIPPED_MODELS = {"default": DEFAULT_MODEL, "srgan": ASSETS / "model-srgan", "realworld": ASSETS / "model-realworld",
                  "realworld-gan": ASSETS / "model-realworld-gan", "auto": ASSETS / "model-auto",
                  "auto-gan": ASSETS / "model-auto-gan"}
# The perception-distortion pairs: (the PSNR model, the GAN trained from it). `alpha` dials between
# the two of a pair, weight by weight (srgan.checkpoint.load_interpolated): 0 the first, 1 the second.
DIAL_PAIRS = (("default", "srgan"), ("realworld", "realworld-gan"), ("auto", "auto-gan"))


def dial_pair(model: str) -> tuple[str, str] | None:
    """The shipped pair `model` belongs to, or None (alpha does not apply to it)."""
    return next((pair for pair in DIAL_PAIRS if model in pair), None)


class UserError(ValueError):
    """An input from the user (a file, a flag, a config value) that cannot work as given: the CLI prints
    it as one line and exits with code 2. Every such error of the project derives from this."""
