"""Using a trained model: the floor under the Grounder, search, the compatibility term, studies and benchmarks.

    checkpoint.py   the versioned ``Checkpoint`` schema: ``save_checkpoint``, ``read_checkpoint`` (upgrades old files)
    loading.py      ``load_for_inference`` -> ``LoadedModel`` (model, text input, decoding, provenance, fingerprint)
    queries.py      the one empty-query check and query encoding
    predict.py      ``run_and_decode`` (one batch) and ``predict`` (batches -> records)
    records.py      the one prediction-record builder
"""

from grounding.inference.checkpoint import Checkpoint, read_checkpoint, resolve_checkpoint, save_checkpoint
from grounding.inference.loading import LoadedModel, load_for_inference, model_fingerprint
from grounding.inference.predict import Decoded, predict, run_and_decode
from grounding.inference.records import Prediction, prediction_record, prediction_records
from grounding.models.shared_space import SharedSpaceModel

__all__ = ["Checkpoint", "Decoded", "LoadedModel", "Prediction", "SharedSpaceModel", "load_for_inference",
           "model_fingerprint", "predict", "prediction_record", "prediction_records", "read_checkpoint",
           "resolve_checkpoint", "run_and_decode", "save_checkpoint"]
