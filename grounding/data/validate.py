"""Check every video's features once before training, and remember the verdicts.

A wrong feature dim or a NaN in an evaluation split used to surface only when that split was first
evaluated, after a whole epoch of training. ``check_features`` reads each video once (one at a time,
nothing is kept), and stores each verdict with the size and modification time of the files it read,
under the feature store's identity, so that a rerun on unchanged files reads nothing at all.

The cache lives in ``$GROUNDING_CACHE_DIR`` (default ``$XDG_CACHE_HOME/grounding`` or
``~/.cache/grounding``); a cache that cannot be written only costs the check on the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from grounding.atomic import write_atomic
from grounding.cache import cache_dir
from grounding.data.features import FeatureBank
from grounding.errors import GroundingError

log = logging.getLogger(__name__)

CACHE_VERSION = 1


@dataclass
class FeatureCheck:
    """Verdicts on the features of some videos: ``bad`` maps a video id to what is wrong with it."""

    videos: int = 0
    read: int = 0  # videos actually read; the others were known from the cache
    bad: dict[str, str] = field(default_factory=dict)


def _cache_path(bank: FeatureBank) -> Path:
    key = json.dumps([CACHE_VERSION, bank.identity()], sort_keys=True)
    return cache_dir() / "feature_checks" / f"{hashlib.sha1(key.encode()).hexdigest()[:20]}.json"


def _load_cache(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(path: Path, entries: dict[str, Any]) -> None:
    try:  # atomic: processes checking at the same time never read half a file
        write_atomic(path, lambda fh: json.dump(entries, fh), binary=False)
    except OSError as err:
        log.info("could not cache the feature check in %s (%s); the next run checks again", path, err)


def _verdict(bank: FeatureBank, vid: str) -> str | None:
    try:
        return bank.problem(vid, bank.load_raw(vid))
    except GroundingError as err:  # unreadable file, wrong shape, missing key
        return str(err)


def check_features(bank: FeatureBank, vids: Iterable[str], progress: bool = False) -> FeatureCheck:
    """Read the features of each of ``vids`` that the cache does not know in its current state."""
    vids = sorted(set(vids))
    path = _cache_path(bank)
    cache = _load_cache(path)
    result = FeatureCheck(videos=len(vids))
    for vid in tqdm(vids, desc="checking features", disable=not progress, mininterval=1.0, leave=False):
        stamp = bank.stamp(vid)
        entry = cache.get(vid)
        if stamp is not None and entry is not None and entry.get("stamp") == stamp:
            problem = entry.get("problem")
        else:
            problem = _verdict(bank, vid) if stamp is not None else f"no features for video '{vid}'"
            result.read += 1
            if stamp is not None:
                cache[vid] = {"stamp": stamp, "problem": problem}
        if problem is not None:
            result.bad[vid] = problem
    if result.read:
        _save_cache(path, cache)
    return result


def bad_features_error(check: FeatureCheck, splits: Iterable[str]) -> GroundingError:
    """One message for ``data.bad_features=error``, with the first problems and the fix."""
    shown = list(check.bad.values())
    if len(check.bad) == check.videos:  # every video: a config mistake (dim, path), not a few bad files
        return GroundingError(f"the features of all {check.videos} videos of {', '.join(splits)} are unusable, "
                              f"e.g. {shown[0]}")
    listed = "; ".join(shown[:3]) + (f"; and {len(shown) - 3} more" if len(shown) > 3 else "")
    return GroundingError(
        f"{len(check.bad)} of {check.videos} videos of {', '.join(splits)} have unusable features ({listed}); "
        "re-extract them, or set data.bad_features=drop to skip their queries"
    )
