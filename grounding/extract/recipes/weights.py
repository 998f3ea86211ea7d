"""Which local weights a recipe's parts load, and a short fingerprint of them for the provenance.

``--weights`` takes, for a recipe of parts ``p1, p2, ...``:

- ``p1=PATH`` (repeatable): that part's file or folder;
- ``PATH`` alone: for a one-part recipe, its weights; for several parts, a folder holding each part's
  ``weights_name`` (e.g. ``SLOWFAST_8x8_R50.pkl`` and ``clip-vit-base-patch32/``).

Nothing is downloaded. The fingerprint is the sha256 of the weight bytes (a folder: of its files'
names and bytes), cut to 12 hex digits: enough to tell two checkpoints apart in a manifest.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from grounding.errors import GroundingError
from grounding.extract.recipes.base import Recipe

_CHUNK = 1 << 20
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".pkl", ".pyth", ".json")


def resolve_weights(recipe: Recipe, values: list[str] | str | Path | None, partial: bool = False) -> dict[str, Path]:
    """``{part name: existing path}`` from ``--weights`` values (see the module docstring); ``partial``: parts
    not named are left out (the caller has them from elsewhere) instead of an error."""
    names = [part.name for part in recipe.parts]
    if values is None or values == []:
        raise GroundingError(f"--recipe {recipe.name} needs --weights: {_needs(recipe)}")
    values = [str(values)] if isinstance(values, (str, Path)) else [str(v) for v in values]
    found: dict[str, Path] = {}
    for value in values:
        key, sep, path = value.partition("=")
        if sep and key in names:
            found[key] = Path(path).expanduser()
        elif sep and not Path(value).exists():
            raise GroundingError(f"--weights {value}: '{key}' is not a part of recipe {recipe.name} "
                                 f"(parts: {', '.join(names)})")
        elif len(names) == 1:
            found[names[0]] = Path(value).expanduser()
        else:
            folder = Path(value).expanduser()
            if not folder.is_dir():
                raise GroundingError(f"--weights {folder}: recipe {recipe.name} has {len(names)} parts; pass a "
                                     f"folder holding them or one name=PATH each: {_needs(recipe)}")
            for part in recipe.parts:
                found.setdefault(part.name, folder / part.weights_name)
    for part in recipe.parts:
        path = found.get(part.name)
        if path is None and partial:
            continue
        if path is None:
            raise GroundingError(f"--weights gives nothing for part '{part.name}' of recipe {recipe.name}; add "
                                 f"--weights {part.name}=PATH ({part.weights_name}: {part.weights_source})")
        if not path.exists():
            raise GroundingError(f"recipe {recipe.name} needs {part.weights_name} for its {part.name} part, and "
                                 f"{path} does not exist; get it from {part.weights_source} and pass "
                                 f"--weights {part.name}=PATH")
    return found


def _needs(recipe: Recipe) -> str:
    return "; ".join(f"{p.name}={p.weights_name} ({p.weights_source})" for p in recipe.parts)


def weights_fingerprint(path: str | Path) -> str:
    """12 hex digits of sha256 over the weight bytes (see the module docstring)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()
                                                  and p.suffix in _WEIGHT_SUFFIXES)
    for file in files:
        if file is not path:
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as fh:
            while block := fh.read(_CHUNK):
                digest.update(block)
    return digest.hexdigest()[:12]


def weights_record(recipe: Recipe, weights: dict[str, Path]) -> dict[str, dict[str, str]]:
    """``{part: {"path", "file", "sha256"}}``: what the manifest and the provenance keep of the weights."""
    return {name: {"path": str(Path(p).resolve()), "file": Path(p).name, "sha256": weights_fingerprint(p)}
            for name, p in weights.items() if name in {part.name for part in recipe.parts}}
