"""The `srgan` commands, one module each with `add_parser(sub)` and `run(args)`.

A command parses its flags and calls the module that does the work: pipelines/prepare.py,
train.py (train_worker.py, train_local.py) and serve.py, or the core for evaluate and upscale.
Commands import Ray, MLflow and torch inside `run`, only where they use them, so `srgan --help`
and a plain `srgan upscale` start fast.
"""

MODEL_HELP = ("'default' (shipped SRResNet), 'srgan' (shipped SRGAN), a checkpoint folder or URI, or "
              "models:/NAME@ALIAS (default: %(default)s)")
ENGINE_HELP = ("inference engine (srgan.engines): auto (the fastest within 0.05 dB of fp32: openvino-int8 on CPU, "
               "eager-fp16 on CUDA), eager (PyTorch fp32, the reference), eager-bf16, eager-fp16 (CUDA), onnx, "
               "openvino, openvino-bf16, openvino-int8; a runtime engine is exported once into ~/.cache/srgan "
               "($SRGAN_CACHE), or read from a --model folder written by `srgan export` (default: %(default)s)")
