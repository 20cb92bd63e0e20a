"""Job files (`--job job.toml` or `.yaml`): model, workload, hardware and budget in one versionable file.

Keys are checked strictly: an unknown section or key, a value of the wrong type or a missing model is a
one-line InputError naming the file, the section and the key. Command-line flags override the file.

A job file is input from someone else as often as not, so it cannot do by itself what a user must choose to do:
- run code: a `module:` model, `trust_remote_code = true` or `trust_pickle = true` in the file needs `--trust-code`
  on the command line (typed there, those are the user's own choice and need nothing more);
- write outside its folder: `report` is taken relative to the job file's folder; a path that lands outside it
  (absolute, `..`, or through a link) needs `--force`, as overwriting an existing report does (checked by the CLI).
`trust_code` and `force` cannot be set in the file. The file is read through `safeio` (a regular file, at most
AFFORD_MAX_FILE_MB); YAML aliases (`*name`, and so `<<:` merges) are refused: a job file has nothing to repeat,
and refusing them rules out "billion laughs" alias bombs that expand a few lines into gigabytes.

    model = "hf:meta-llama/Llama-2-7b-hf"
    [workload]   train_samples = 100000, batch_size = 8, precision = "bf16-mixed", ...
    [hardware]   device = "h100-80gb", count = 8, ...
    [budget]     usd = 5000, deadline = "7d", ...
    [plan]       lora_rank = 16, max_count = 64

Every key, its section and its type come from `schema.JobRequest`; an unknown key's error lists the valid ones.
"""

from __future__ import annotations

import reprlib
import tomllib
from pathlib import Path
from typing import Any

from afford import safeio, schema
from afford.errors import InputError
from afford.names import closest, shorten

# Flags that only the command line may give: a job file setting them would grant itself what they allow.
COMMAND_LINE_ONLY = ("trust_code", "force")
# Job keys that run code when true; from a job file they need --trust-code.
_RUNS_CODE = ("trust_remote_code", "trust_pickle")

# section -> {job key: (CLI parameter name, type)}; None is the file's top level. Generated from the one
# declaration of a job's options (schema.JobRequest), plus the model and the report path.
SCHEMA: dict[str | None, dict[str, tuple[str, type]]] = schema.job_file_schema()
SCHEMA[None] = {"model": ("model", str), **SCHEMA[None], "report": ("report", str)}

# Values quoted in messages are cut short (a job file's list may be long or deeply nested).
_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlevel = 80, 80, 3

_TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               list: "a list of strings", dict: "a table of KEY = VALUE"}


def _yaml(text: str, path: Path) -> Any:
    """The YAML document, parsed safely with aliases refused (see the module docstring)."""
    import yaml

    try:
        return safeio.load_yaml(text, str(path))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise InputError(f"{path}: not valid YAML: {where}{getattr(exc, 'problem', None) or exc}") from None


def _read(path: Path) -> dict[str, Any]:
    """The file's mapping; a parse error names the file and the line."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise InputError(f"--job {path}: use a .toml, .yaml or .yml file")
    text = safeio.read_text(path, "--job")
    try:
        if suffix == ".toml":
            try:
                data: Any = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise InputError(f"{path}: not valid TOML: {exc}") from None
        else:
            data = _yaml(text, path)
    except RecursionError:
        raise InputError(f"{path}: nests too deep to read (thousands of levels); not a job file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{path}: the top level must be a table of keys, got {type(data).__name__}")
    return data


def _check(path: Path, where: str, key: str, value: Any, kind: type) -> Any:
    """`value` as `kind`, or an InputError naming the place."""
    ok: bool
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is list:
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
    elif kind is dict:
        ok = isinstance(value, dict) and all(isinstance(v, (str, int, float, bool)) for v in value.values())
    else:
        ok = isinstance(value, str)
    if not ok:
        raise InputError(f"{path}: {where}{key} must be {_TYPE_NAMES[kind]}, got {_SHORT.repr(value)}")
    return value


def _unknown(path: Path, where: str, key: Any, valid: list[str]) -> InputError:
    if key in COMMAND_LINE_ONLY:
        return InputError(f"{path}: {key} cannot be set in a job file; pass --{key.replace('_', '-')} on the command "
                          "line if you mean it")
    key = shorten(str(key))
    near = closest(key, valid)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return InputError(f"{path}: {where}unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")


def load(path: str | Path) -> dict[str, Any]:
    """The job file as {CLI parameter name: value}; strict about sections, keys and types. A `report` path is
    taken relative to the job file's folder."""
    path = Path(path).expanduser()
    data = _read(path)
    out: dict[str, Any] = {}
    sections = [s for s in SCHEMA if s is not None]
    for key, value in data.items():
        if isinstance(value, dict) and key not in SCHEMA[None]:
            if key is None or key not in SCHEMA:
                near = closest(str(key), sections)
                hint = f" (did you mean [{near[0]}]?)" if near else ""
                raise InputError(f"{path}: unknown section [{shorten(str(key))}]{hint}; sections: "
                                 f"{', '.join(f'[{s}]' for s in sections)}")
            schema = SCHEMA[key]
            for sub, sub_value in value.items():
                if sub not in schema:
                    raise _unknown(path, f"[{key}] ", sub, list(schema))
                param, kind = schema[sub]
                out[param] = _check(path, f"[{key}] ", sub, sub_value, kind)
            continue
        if key not in SCHEMA[None]:
            if key in {k for s in sections for k in SCHEMA[s]}:
                home = next(s for s in sections if key in SCHEMA[s])
                raise InputError(f"{path}: key {key!r} belongs in the [{home}] section")
            raise _unknown(path, "", key, [*SCHEMA[None], *(f"[{s}]" for s in sections)])
        param, kind = SCHEMA[None][key]
        out[param] = _check(path, "", key, value, kind)
    if "model_option" in out:
        out["model_option"] = [f"{k}={v}" for k, v in out["model_option"].items()]
    if "report" in out:
        out["report"] = str(path.parent / out["report"])
    return out


def _outside(path: Path, report: str) -> bool:
    """Whether a job file's report path (already joined to the job's folder) lands outside that folder."""
    try:
        return not Path(report).resolve().is_relative_to(path.parent.resolve())
    except (OSError, ValueError):
        return True


def _gate(path: Path, job: dict[str, Any], explicit: set[str], trust_code: bool, force: bool) -> None:
    """Refuse what a job file may not do without the command line's say-so (see the module docstring)."""
    taken = {k: v for k, v in job.items() if k not in explicit}
    model = taken.get("model")
    if isinstance(model, str) and model.strip().startswith("module:") and not trust_code:
        raise InputError(f"{path}: model = {shorten(model)!r} imports and runs Python code; a job file may do that "
                         "only with --trust-code on the command line (or give the model on the command line)")
    for key in _RUNS_CODE:
        if taken.get(key) is True and not trust_code:
            raise InputError(f"{path}: {key} = true lets the job file run code; pass --trust-code (or "
                             f"--{key.replace('_', '-')}) on the command line if you trust it")
    report = taken.get("report")
    if isinstance(report, str) and not force and _outside(path, report):
        raise InputError(f"{path}: report = {shorten(report)!r} lies outside the job file's folder; pass --force to "
                         "write there, or give --report on the command line")


def merge(path: str | Path, given: dict[str, Any], explicit: set[str], command: str, *, trust_code: bool = False,
          force: bool = False) -> dict[str, Any]:
    """The command's parameters with the job file's values under them: flags in `explicit` (typed on the
    command line) win; a job key the command does not take is an error naming it. Code the file would run and
    a report outside its folder need `trust_code` and `force`."""
    job = load(path)
    _gate(Path(path).expanduser(), job, explicit, trust_code, force)
    merged = dict(given)
    for param, value in job.items():
        if param not in given:
            raise InputError(f"{path}: {param!r} does not apply to `afford {command}`")
        if param not in explicit:
            merged[param] = value
    if not merged.get("model"):
        raise InputError(f"{path}: no model; set model = \"...\" at the top of the file or pass MODEL")
    return merged
