"""Feature extraction: raw videos (decord) -> clip features in the formats ``grounding.data`` reads.

Modules, one concept each: ``sampling`` (clip counts and frame indices), ``video_io`` (decoding),
``transforms`` (resize/crop/normalise), ``backbones`` (the models, by name), ``writers`` (output
formats and the manifest), ``inputs`` (listing, naming, sharding videos), ``runtime`` (device and the
run summary), ``pipeline`` (the video run), ``queries`` (text mode), ``synthetic`` and ``bench``
(test videos, random models, throughput). ``tools/extract_features.py`` is the command line.
"""
