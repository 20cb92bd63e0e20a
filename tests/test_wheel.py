"""The built wheel, installed without extras into a clean venv and run from outside the source tree (issue 15,
packaging): it assesses `torchvision:resnet50` (its package data, the hardware catalog and the bundled configs,
ship inside it) and refuses `keras:ResNet50` with one line naming the keras extra.

Installing torch into a fresh venv would take minutes and gigabytes, so the venv sees the core dependencies of
this environment and nothing else: a folder of symlinks to exactly the distributions that the wheel's own
Requires-Dist (no extras) pulls in, recursively, named in a .pth file. keras, transformers, timm... stay absent.
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement  # with transformers, pip, setuptools: always in the test venv

from afford import extras

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
OPTIONAL = sorted({m for modules in extras.EXTRAS.values() for m in modules})


def _build_wheel(tmp: Path) -> Path:
    """The wheel of a copy of the source tree (the working tree is shared: nothing is written into it)."""
    tree = tmp / "tree"
    shutil.copytree(ROOT / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, tree / name)
    out = tmp / "dist"
    out.mkdir()
    code = f"from setuptools import build_meta; print(build_meta.build_wheel({str(out)!r}))"
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out / done.stdout.strip().splitlines()[-1]


def _core_requirements(wheel: Path) -> list[str]:
    """The wheel's Requires-Dist lines that no extra guards: what `pip install afford` installs."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode("utf-8")
    lines = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    return [line for line in lines if "extra ==" not in line]


def _closure(requirements: list[str]) -> set[str]:
    """The installed distributions (this environment's) that `requirements` pull in, recursively, extras of a
    requirement (`cuda-toolkit[cublas]`) included, markers evaluated for this interpreter."""
    seen: set[str] = set()
    todo = [(r, "") for r in requirements]
    while todo:
        text, extra = todo.pop()
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate({"extra": extra}):
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue  # an optional platform package absent here (torch runs without it)
        key = f"{dist.metadata['Name'].lower()}[{','.join(sorted(req.extras))}]"
        if key in seen:
            continue
        seen.add(key)
        for sub in dist.requires or []:
            for wanted in ("", *sorted(req.extras)):
                todo.append((sub, wanted))
    return {k.split("[")[0] for k in seen}


def _link_core(names: set[str], folder: Path) -> None:
    """Symlink into `folder` every top-level entry (package, module, .dist-info, .libs) of the distributions."""
    folder.mkdir()
    for name in sorted(names):
        dist = md.distribution(name)
        base = Path(str(dist.locate_file("")))
        for file in dist.files or []:
            top = Path(file).parts[0]
            if top == ".." or top.endswith(".pth") or (folder / top).exists():
                continue  # scripts outside site-packages; path hooks are this environment's
            target = base / top
            if target.exists():
                (folder / top).symlink_to(target)


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh venv holding the built wheel (no extras) over the core dependencies alone; and its work folder."""
    tmp = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(tmp)
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", "--no-compile", "-q", str(wheel)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    core = _closure(_core_requirements(wheel))
    assert {"torch", "torchvision", "typer", "rich"} <= core, core
    _link_core(core, tmp / "core-site")
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    (site / "afford_core_deps.pth").write_text(str(tmp / "core-site") + "\n")
    work = tmp / "work"  # outside the source tree
    work.mkdir()
    return env_dir, work


def _env(work: Path) -> dict[str, str]:
    """A clean environment: nothing from this checkout or this venv on the path; history kept in `work`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "AFFORD"))}
    env.update(HOME=str(work), XDG_DATA_HOME=str(work / "data"), XDG_CACHE_HOME=str(work / "cache"),
               HF_HUB_OFFLINE="1")
    return env


def test_wheel_holds_its_package_data(clean_venv: tuple[Path, Path]) -> None:
    env_dir, work = clean_venv
    code = ("import afford, importlib.resources as r, json; from afford.hardware.catalog import Catalog; "
            "from afford.sources import hf; f = r.files('afford'); "
            "print(json.dumps({'file': afford.__file__, 'devices': len(Catalog.load().devices), "
            "'hf': len(hf.catalog()), 'diffusers': len(list((f / 'sources' / 'diffusers_configs').iterdir())), "
            "'toml': sorted(p.name for p in (f / 'estimate').iterdir() if p.name.endswith('.toml')), "
            "'data': [(f / p).is_file() for p in ('hardware/devices.toml', 'sources/recsys_presets.json')], "
            "'optional': [m for m in " + repr(OPTIONAL) + " if __import__('importlib.util').util.find_spec(m)]}))")
    done = subprocess.run([str(env_dir / "bin" / "python"), "-c", code], cwd=work, env=_env(work),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout)
    assert got["file"].startswith(str(env_dir)), got["file"]  # the installed wheel, not this checkout
    assert got["optional"] == [], got["optional"]  # no extra is visible
    assert got["devices"] >= 10 and got["data"] == [True, True]
    assert got["hf"] == len(list((ROOT / "src/afford/sources/hf_configs").glob("*.json")))
    assert got["diffusers"] == len(list((ROOT / "src/afford/sources/diffusers_configs").glob("*.json")))
    assert got["toml"] == sorted(p.name for p in (ROOT / "src/afford/estimate").glob("*.toml"))


def test_core_install_assesses_torchvision(clean_venv: tuple[Path, Path]) -> None:
    env_dir, work = clean_venv
    done = subprocess.run([str(env_dir / "bin" / "afford"), "assess", "torchvision:resnet50", "--json"], cwd=work,
                          env=_env(work), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    model = json.loads(done.stdout)["model"]
    assert model["name"] == "torchvision:resnet50"
    assert model["params"] == model["published_params"] == 25_557_032


def test_core_install_refuses_keras_naming_the_extra(clean_venv: tuple[Path, Path]) -> None:
    env_dir, work = clean_venv
    done = subprocess.run([str(env_dir / "bin" / "afford"), "assess", "keras:ResNet50"], cwd=work, env=_env(work),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert re.search(r"keras:ResNet50 needs the keras extra .*pip install 'afford\[keras\]'", lines[0]), lines[0]
