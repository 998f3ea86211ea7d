"""Feature extraction: raw videos (decord) -> clip features in the formats ``grounding.data`` reads.

Modules, one concept each: ``sampling`` (clip counts and frame indices), ``video_io`` (decoding),
``writers`` (output formats), ``inputs`` (listing, naming, sharding videos), ``runtime`` (device and
the run summary), ``pipeline`` (the video run), ``queries`` (text mode), ``synthetic`` and ``bench``
(test videos, random models, throughput), and ``recipes/`` (named reproductions of released feature
sets: ``--recipe NAME --weights PATH``). ``tools/extract_features.py`` is the command line.

The models and their frame preprocessing are ``grounding.backbones``; the manifest format is
``grounding.data.manifest``. extract/ may import data/ (annotations, the manifest); data/ never
imports extract/.
"""
