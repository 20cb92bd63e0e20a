"""Keras 3 models: `keras:NAME` (the `keras.applications` architectures) and saved `.keras` / `.h5` files.

They are counted by the same meta-device trace as every other source, through Keras's PyTorch backend: there a
Keras layer is a `torch.nn.Module` whose ops are torch ops, so afford's FlopCounterMode sees every convolution
and matmul. Keras reads each weight through `variable.value`, not through the module's parameters, so the
module afford traces (`KerasModule`) runs the model inside a `keras.StatelessScope` that maps every variable
to the tensor registered under its name: the trace's stand-ins (dtype, `--freeze`) are what Keras computes
with. Models are built on the meta device with `weights=None`; nothing is downloaded and no weights are read.
Method and figures: docs/keras.md.

Modules: runtime.py (Keras on torch's meta device, `KerasModule`), spec.py (inputs, loss, ModelSpec),
applications.py (`keras:NAME`), files.py (.keras / .h5), objects.py (model objects built in Python).
"""

from afford.sources.keras.applications import PUBLISHED, PUBLISHED_SOURCE, list_names, resolve
from afford.sources.keras.files import resolve_path
from afford.sources.keras.objects import from_model, is_keras_model
from afford.sources.keras.runtime import KerasModule, load_keras

__all__ = ["PUBLISHED", "PUBLISHED_SOURCE", "KerasModule", "from_model", "is_keras_model", "list_names", "load_keras",
           "resolve", "resolve_path"]
