"""The economics planner: the questions a team asks before it commits money.

One module per calculator, each usable as a library (typed inputs in, a result dataclass with
``to_dict()`` out, an ``explain()`` that lays out assumptions, arithmetic and a verdict) and
from ``costwarden plan <sub>`` (``planner/cli.py`` only parses and prints):

- ``selfhost``  API vs self-hosted cost per request / per 1M tokens, break-even, fleet sizing
- ``gpus``      the GPU catalog (``data/gpus.yaml``: prices and throughput, each with a source)
- ``padding``   static batching with padding vs continuous batching
- ``spot``      Monte-Carlo of a job or a serving fleet under preemption
- ``autoscale`` fixed fleet vs autoscaling vs scale-to-zero over hourly traffic
- ``strategy``  RAG vs long context vs fine-tuning over a horizon (``fine_tune_break_even``)
- ``design``    the seed's summarisation service as a ready scenario, with sensitivities
- ``measure``   tokens/s and TTFT of any OpenAI-compatible server

Money is ``Decimal`` in every result; simulations use floats inside and convert at the end.
"""
