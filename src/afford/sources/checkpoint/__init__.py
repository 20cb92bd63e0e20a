"""Checkpoints on disk: parameter count, dtypes and bytes read from safetensors headers, never from the data.

A `.safetensors` file is an 8-byte little-endian header length N, N bytes of JSON
`{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}`, then the tensor bytes
(https://github.com/huggingface/safetensors, README "Format"). Reading 8 + N bytes is enough to count a 10 GB
file. Pickled checkpoints (`torch.save`) are refused unless the user trusts them, then read on the meta device.
With a config.json beside the weights the checkpoint becomes a full Hugging Face assessment (docs/checkpoints.md).
"""

from afford.sources.checkpoint.headers import (
    INDEX_SIZE_SCALE,
    MAX_HEADER_SIZE,
    PICKLE_SUFFIXES,
    inspect,
    sniff,
    weight_files,
)
from afford.sources.checkpoint.info import (
    DTYPE_BITS,
    FLOAT_DTYPES,
    TRUST_HINT,
    CheckpointInfo,
    NoArchitecture,
    NotSafetensors,
    PickleRefused,
    TensorEntry,
)
from afford.sources.checkpoint.resolve import compare, resolve_path
from afford.sources.checkpoint.summary import render, summary

__all__ = [
    "DTYPE_BITS", "FLOAT_DTYPES", "INDEX_SIZE_SCALE", "MAX_HEADER_SIZE", "PICKLE_SUFFIXES", "TRUST_HINT",
    "CheckpointInfo", "NoArchitecture", "NotSafetensors", "PickleRefused", "TensorEntry", "compare", "inspect",
    "render", "resolve_path", "sniff", "summary", "weight_files",
]
