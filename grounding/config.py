"""Experiment configs: YAML files composed from parts, plus dotted ``key=value`` overrides.

A config file may list parts to start from under ``_base_`` (paths relative to the file); parts are
merged in order, then the file itself, then the command-line overrides. The resolved result is what
a run saves as ``config.yaml``, so any number can be reproduced from it alone. Overrides are checked
against the composed config first (``grounding.overrides``): a misspelt key or a value of the wrong kind
is an error, and ``+key=value`` adds a key the config does not have.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from grounding.errors import GroundingError
from grounding.overrides import check_overrides, parse_override

BASE_KEY = "_base_"


def _load_tree(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    path = path.resolve()
    if path in seen:
        raise GroundingError(f"config {path} includes itself through {BASE_KEY}")
    if not path.is_file():
        raise GroundingError(f"config file {path} does not exist; pass an existing YAML file to --config")
    try:
        cfg = OmegaConf.load(path)
    except (OmegaConfBaseException, ValueError) as err:  # YAML syntax errors arrive as ValueError/ScannerError
        raise GroundingError(f"config file {path} is not valid YAML: {err}") from err
    except Exception as err:  # yaml.YAMLError does not share a base with the above
        raise GroundingError(f"config file {path} is not valid YAML: {err}") from err
    bases = cfg.pop(BASE_KEY, None) or []
    if isinstance(bases, str):
        bases = [bases]
    merged = OmegaConf.create()
    for base in bases:
        merged = OmegaConf.merge(merged, _load_tree(path.parent / base, seen + (path,)))
    return OmegaConf.merge(merged, cfg)  # type: ignore[return-value]


def parse_overrides(overrides: Sequence[str]) -> DictConfig:
    """``["train.epochs=5", "+new.key=1"]`` -> a config holding just those keys (not checked)."""
    items = [parse_override(item).as_dotlist_item() for item in overrides]
    return OmegaConf.from_dotlist(items)


def apply_overrides(cfg: DictConfig, overrides: Sequence[str], source: str) -> DictConfig:
    """``cfg`` with ``overrides`` checked against it (``grounding.overrides``) and merged: every path that
    lets a user change a config goes through here, so a typo is refused wherever the override is given."""
    checked = check_overrides(cfg, overrides, source=source)
    return OmegaConf.merge(cfg, OmegaConf.from_dotlist([o.as_dotlist_item() for o in checked]))  # type: ignore[return-value]


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> DictConfig:
    """Load ``path`` with its ``_base_`` parts, check and apply overrides, and resolve interpolations."""
    cfg = apply_overrides(_load_tree(Path(path)), overrides, source=str(path))
    try:
        OmegaConf.resolve(cfg)
    except OmegaConfBaseException as err:
        raise GroundingError(f"config {path} does not resolve: {err}") from err
    return cfg  # type: ignore[return-value]


def save_config(cfg: DictConfig, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, path, resolve=True)


def to_plain(cfg: DictConfig | dict) -> dict:
    """A plain dict (for checkpoints and JSON), whatever was passed in."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


CONFIG_DIR = Path(__file__).resolve().parent / "configs"  # the shipped configs (a link to the top-level configs/)


def packaged_config(name: str | Path) -> Path:
    """A config shipped with the package by its name under ``configs/`` (e.g. ``charades_sta.yaml``), so
    package code never depends on the working directory or on where a checkout lies."""
    path = CONFIG_DIR / name
    if not path.is_file():
        raise GroundingError(f"no packaged config '{name}' in {CONFIG_DIR}")
    return path
