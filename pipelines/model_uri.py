"""Where a generator comes from: a model spec on the command line -> a loaded Generator, or the
inference engine that runs it (srgan.engines).

    default, srgan, realworld, realworld-gan, auto, auto-gan
                                the generators shipped in the package (srgan/assets/model*)
    models:/NAME@ALIAS          a model registered in MLflow by `srgan train`
    s3://.., gs://..            a checkpoint folder on any pyarrow filesystem (file:// too)
    PATH                        a local checkpoint folder
A model fetched from elsewhere goes to a temporary folder that is removed when the process exits.

An engine already exported (a shipped model's in the cache, or a folder `srgan export` wrote)
runs without torch; anything else imports it, to load the generator and export or run it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pipelines import storage
from srgan import SHIPPED_MODELS, dial_pair
from srgan.checkpoint import CheckpointError
from srgan.engines import Engine, EngineUnavailable, torch_installed
from srgan.inference import cache_root, exported_engine, shipped_engine

if TYPE_CHECKING:
    from srgan.models import Generator


def checkpoint_folder(spec: str, tracking_uri: str | None = None) -> Path:
    """A local folder holding the checkpoint `spec` names (downloaded if it is remote)."""
    if spec in SHIPPED_MODELS:
        if not (SHIPPED_MODELS[spec] / "config.json").is_file():
            raise CheckpointError(f"no {spec!r} model is shipped at {SHIPPED_MODELS[spec]}")
        return SHIPPED_MODELS[spec]
    if spec.startswith("models:/"):
        from pipelines import tracking

        return tracking.download_checkpoint(spec, tracking_uri)
    if storage.is_uri(spec):
        import pyarrow.fs as pafs

        local = storage.download_folder()
        fs, path = storage.resolve(spec)
        if fs.get_file_info(path).type != pafs.FileType.Directory:
            raise FileNotFoundError(f"--model {spec}: no such checkpoint folder")
        pafs.copy_files(path, str(local), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
        return local
    if not Path(spec).is_dir():
        raise FileNotFoundError(f"--model {spec}: no such checkpoint folder")
    return Path(spec)


def portable(spec: str) -> str:
    """The same spec for another process or node: a local folder made absolute, others unchanged."""
    if spec in SHIPPED_MODELS or spec.startswith("models:/") or storage.is_uri(spec):
        return spec
    return str(Path(spec).resolve())


def load_model(spec: str, tracking_uri: str | None = None) -> Generator:
    """The generator `spec` names, in eval mode, on the GPU if there is one."""
    from srgan.checkpoint import load_generator

    return _on_device(load_generator(checkpoint_folder(spec, tracking_uri)))


def _on_device(g: Generator) -> Generator:
    import torch

    return g.to("cuda") if torch.cuda.is_available() else g


def load_engine(spec: str, engine: str = "auto", tracking_uri: str | None = None,
                alpha: float | None = None) -> Engine:
    """The inference engine `engine` (srgan.engines.ENGINE_CHOICES) for the generator `spec` names.

    A shipped model's runtime engine comes from the cache (srgan.inference.shipped_engine), where
    the first run with torch, or `srgan export --shipped`, put it. A folder written by `srgan
    export` is a checkpoint folder that also holds its exported graph: asked for that engine (or
    `auto`, where it is auto's choice), it runs the graph as exported. Neither needs torch; the
    rest does (srgan.graphs.open_engine). `alpha` runs the shipped pair of `spec`
    interpolated instead (srgan.checkpoint.load_interpolated): 0 its PSNR model, 1 its GAN.
    """
    if alpha is not None:
        pair = dial_pair(spec)
        if pair is None:
            raise CheckpointError(f"alpha interpolates a shipped pair; {spec} is not in one")
        _need_torch(f"alpha (the weights of {' and '.join(pair)} interpolated)")
        from srgan.checkpoint import load_interpolated, read_meta
        from srgan.graphs import open_engine

        source = {"model": f"{' and '.join(pair)} interpolated, alpha {alpha:g}",
                  "model_config": read_meta(SHIPPED_MODELS[pair[0]])["model"]}
        return open_engine(engine, _on_device(load_interpolated(alpha, pair)), source=source)
    shipped = spec if spec in SHIPPED_MODELS else None
    if shipped and (ready := shipped_engine(shipped, engine)) is not None:
        return ready
    folder = checkpoint_folder(spec, tracking_uri)
    if (ready := exported_engine(folder, engine)) is not None:
        return ready
    _need_torch(f"--model {spec} --engine {engine}: " + (
        f"its engine is not exported in {cache_root()} (`srgan export --shipped` puts it there)" if shipped else
        "the folder holds no graph of this engine (`srgan export --model M --format F --out DIR` writes one)"))
    from srgan.checkpoint import load_generator, read_meta
    from srgan.graphs import open_engine

    source = {"model": portable(spec), "model_config": read_meta(folder)["model"]}
    return open_engine(engine, _on_device(load_generator(folder)), exported=folder, source=source, shipped=shipped)


def _need_torch(what: str) -> None:
    if not torch_installed():
        raise EngineUnavailable(f"{what}: that needs PyTorch, which is not installed here (this is the torch-free "
                                f"serving install; the full image or `pip install srgan-ray` has it)")
