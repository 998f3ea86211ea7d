"""Evaluation: temporal IoU, R@n/mIoU, the official QVHighlights metrics, prediction files, result tables.

Everything here depends only on numpy (pandas for the results table), so numbers can be checked
from two JSONL files without the model, as with Moment-DETR's ``standalone_eval``.
"""
