"""The built-in synthetic benchmarks: real files in the Charades-STA, the QVHighlights or the long-video
(ActivityNet Captions JSON) layout, so the whole pipeline runs without any download, hard enough to tell
models apart.

- ``spec``: ``SyntheticSpec``, the size, difficulty, seed and layout of a benchmark;
- ``world``: the actions, objects and events every layout films, the one split writer and its replay;
- ``charades`` / ``qvhighlights`` / ``long``: the three file layouts;
- ``benchmark``: ``write_synthetic``, the folder (reused when it already holds the spec);
- ``prepare``: the tools' step "write the benchmark a config names" before training or evaluating;
- ``shortcuts``: the audit of what predictors that never see the video reach on a benchmark;
- ``error_analysis``: on which event a run's top-1 windows land (the folder's videos replayed from its spec).

    from grounding.synthetic import SyntheticSpec, write_synthetic
    write_synthetic("data/synthetic", SyntheticSpec(train_videos=200, seed=1))
"""

from grounding.synthetic.benchmark import GENERATOR_VERSION, write_synthetic
from grounding.synthetic.spec import LAYOUT_DEFAULTS, LAYOUTS, SyntheticSpec
from grounding.synthetic.world import ACTIONS, OBJECTS, World, vocabulary

__all__ = ["ACTIONS", "GENERATOR_VERSION", "LAYOUTS", "LAYOUT_DEFAULTS", "OBJECTS", "SyntheticSpec", "World",
           "vocabulary", "write_synthetic"]
