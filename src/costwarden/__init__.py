"""costwarden: an LLM FinOps gateway — exact cost per request, attribution, durable ledger."""

__version__ = "0.1.0"
