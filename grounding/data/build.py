"""From a config's ``data`` and ``text`` sections to datasets: the one place paths get resolved."""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grounding.data.annotations import read_annotations
from grounding.data.dataset import GroundingDataset
from grounding.data.features import FeatureBank, build_store
from grounding.data.records import MomentRecord, clean_records
from grounding.data.settings import data_root, max_words
from grounding.data.text import TextInput, build_text_input
from grounding.data.validate import bad_features_error, check_features
from grounding.errors import GroundingError

log = logging.getLogger(__name__)


def resolve(root: str | Path, path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else Path(root) / path


def feature_store_specs(data_cfg: Any) -> list[dict[str, Any]]:
    """``data.features`` is a path (with ``data.feature_format``/``feature_key``) or a list of store specs."""
    features = data_cfg.get("features", "features")
    if isinstance(features, str):
        return [{"format": data_cfg.get("feature_format", "npy"), "path": features, "key": data_cfg.get("feature_key")}]
    return [dict(spec) for spec in features]


def build_feature_bank(data_cfg: Any, video_dim: int | None) -> FeatureBank:
    root = data_root(data_cfg)
    stores = [build_store(spec, root) for spec in feature_store_specs(data_cfg)]
    return FeatureBank(
        stores,
        num_clips=data_cfg.get("num_clips"),
        max_clips=data_cfg.get("max_clips"),
        l2_normalize=bool(data_cfg.get("l2_normalize", False)),
        expected_dim=video_dim,
    )


def annotation_file(data_cfg: Any, split: str) -> str:
    """``data.annotations.<split>``, or an error naming the splits the config has."""
    annotations = data_cfg.get("annotations") or {}
    if split not in annotations or annotations[split] is None:
        known = [name for name in annotations if annotations[name] is not None]
        close = difflib.get_close_matches(split, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise GroundingError(
            f"no annotation file for split '{split}' (this config has {', '.join(known) or 'none'}); "
            f"{hint}or set data.annotations.{split}"
        )
    return str(annotations[split])


def load_split_records(data_cfg: Any, split: str) -> list[MomentRecord]:
    """Read and clean one split's annotations, logging what cleaning changed."""
    root = data_root(data_cfg)
    path = resolve(root, annotation_file(data_cfg, split))
    durations = (data_cfg.get("durations") or {}).get(split)
    durations_path = resolve(root, durations) if durations else None
    records = read_annotations(data_cfg.get("dataset", "native"), path, durations_path)
    records, report = clean_records(
        records,
        empty_windows=data_cfg.get("empty_windows", "keep"),
        missing_duration=data_cfg.get("missing_duration", "drop"),
        source=str(path),
    )
    log.info("%s (%s): %s", split, path, report.summary())
    for line in report.details():
        log.warning("  %s", line)
    if not records:
        raise GroundingError(f"{path}: no usable query is left after cleaning ({report.summary()})")
    return records


def drop_or_fail_missing_features(records: list[MomentRecord], bank: FeatureBank, policy: str, split: str) -> list[MomentRecord]:
    missing = bank.missing(r.vid for r in records)
    if not missing:
        return records
    where = ", ".join(str(getattr(s, "root", getattr(s, "file_path", "?"))) for s in bank.stores)
    if policy != "drop":
        raise GroundingError(
            f"{len(missing)} video(s) of split '{split}' have no features in {where} (e.g. {missing[:5]}); "
            "extract them, fix data.features, or set data.missing_features=drop to skip their queries"
        )
    kept = [r for r in records if r.vid not in set(missing)]
    log.warning("%s: dropped %d queries of %d videos without features", split, len(records) - len(kept), len(missing))
    return kept


def read_tags(path: Path) -> dict[Any, list[str]]:
    """Optional per-query tags (``{"qid", "tags": [...]}`` lines) used to report metrics per subset."""
    if not path.is_file():
        raise GroundingError(f"tag file {path} does not exist; fix data.tags or remove it")
    tags: dict[Any, list[str]] = {}
    with path.open() as fh:
        for line in fh:
            if line.strip():
                obj = json.loads(line)
                tags[obj["qid"]] = list(obj["tags"])
    return tags


class DataBundle:
    """The text input (fitted on train) and the feature bank shared by all splits of one run."""

    def __init__(self, cfg: Any, text_state: dict[str, Any] | None = None) -> None:
        self.cfg = cfg
        self.data_cfg = cfg.data
        self.bank = build_feature_bank(self.data_cfg, cfg.model.get("video_dim"))
        self._records: dict[str, list[MomentRecord]] = {}
        self._datasets: dict[str, GroundingDataset] = {}
        self._validated: set[str] = set()
        self.text: TextInput = build_text_input(cfg.get("text") or {"input": "vocab"})
        if text_state is not None:
            self.text.load_state(text_state)
        else:
            self.text.fit(self.records(self.data_cfg.get("train_split", "train")))

    def records(self, split: str) -> list[MomentRecord]:
        if split not in self._records:
            recs = load_split_records(self.data_cfg, split)
            self._records[split] = drop_or_fail_missing_features(
                recs, self.bank, self.data_cfg.get("missing_features", "error"), split
            )
        return self._records[split]

    def validate(self, splits: Iterable[str], progress: bool = False) -> None:
        """Check the features of every video of ``splits`` now, before they are used (cached across runs).

        ``data.bad_features=error`` (the default) stops with the first problems and the fix; ``drop``
        removes the queries of videos whose features are unusable (wrong dim, NaN/inf, unreadable).
        """
        splits = [s for s in dict.fromkeys(splits) if s not in self._validated]
        if not splits:
            return
        policy = self.data_cfg.get("bad_features", "error")
        if policy not in ("error", "drop"):
            raise GroundingError(f"data.bad_features is '{policy}'; use error or drop")
        check = check_features(self.bank, (r.vid for s in splits for r in self.records(s)), progress)
        log.info("features of %d videos (%s) checked: %d read, %d known from the cache, %d unusable",
                 check.videos, ", ".join(splits), check.read, check.videos - check.read, len(check.bad))
        if check.bad and (policy == "error" or len(check.bad) == check.videos):
            raise bad_features_error(check, splits)
        for split in splits:
            records = self._records[split]
            kept = [r for r in records if r.vid not in check.bad]
            if len(kept) < len(records):
                vids = sorted({r.vid for r in records} & check.bad.keys())
                log.warning("%s: dropped %d queries of %d videos with unusable features (data.bad_features=drop), "
                            "e.g. %s", split, len(records) - len(kept), len(vids), check.bad[vids[0]])
                if not kept:
                    raise GroundingError(f"split '{split}': no query is left after dropping videos with unusable "
                                         "features; re-extract them")
                self._records[split] = kept
                self._datasets.pop(split, None)
            self._validated.add(split)

    def tags_path(self, split: str) -> Path | None:
        """``data.tags.<split>``, else a sidecar ``<annotation stem>.tags.jsonl`` beside the annotations."""
        root = data_root(self.data_cfg)
        configured = (self.data_cfg.get("tags") or {}).get(split)
        if configured:
            return resolve(root, configured)
        annotation = resolve(root, annotation_file(self.data_cfg, split))
        sidecar = annotation.with_name(annotation.name.split(".")[0] + ".tags.jsonl")
        return sidecar if sidecar.is_file() else None

    def dataset(self, split: str) -> GroundingDataset:
        """The split's dataset, built once (annotations and tags are read a single time per run)."""
        if split not in self._datasets:
            self.validate([split])
            tags_path = self.tags_path(split)
            tags = read_tags(tags_path) if tags_path else None
            self._datasets[split] = GroundingDataset(self.records(split), self.bank, self.text,
                                                     max_words(self.data_cfg), tags)
        return self._datasets[split]
