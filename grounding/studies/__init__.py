"""Studies: experiments that train several models and report on them (docs/compatibility.md, docs/model.md).

    protocol               what every study shares: the compat section, the old model's training
                           subset, the summary writer; every model is trained by the engine's TrainStep
    moment_split           a split as cached tensors of videos, queries and moments
    dual_encoder           the compatibility study's retrieval model (a SharedSpaceModel) and split embedding
    dual_encoder_training  the training loop of one dual encoder (TrainStep)
    compat_study           the compatibility study on the dual encoder (tools/train_compat.py)
    compat_report          its results.csv, hot_refresh.csv/.png, summary.md and the claim check
    ccman_study            the compatibility study on CCMAN's own space, scored by corpus search
    ablation               the CCMAN ablation runner (tools/run_ablations.py)

The algorithms they measure live below, in ``grounding.compat``; the studies sit above the engine
(beside api/, search/ and bench/) and may import all of them.
"""
