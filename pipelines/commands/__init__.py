"""The `srgan` commands, one module each with `add_parser(sub)` and `run(args)`.

A command parses its flags and calls the module that does the work: pipelines/prepare.py,
train.py (train_worker.py, train_local.py) and serve.py, or the core for evaluate and upscale.
Commands import Ray, MLflow and torch inside `run`, only where they use them, so `srgan --help`
and a plain `srgan upscale` start fast.
"""

MODEL_HELP = ("'default' (shipped SRResNet), 'srgan' (shipped SRGAN), a checkpoint folder or URI, or "
              "models:/NAME@ALIAS (default: %(default)s)")
