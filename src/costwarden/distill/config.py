"""Typed settings of distillation (the ``distill:`` section): which features' traffic is
captured as request/response pairs, and what small fine-tuned model the candidates are priced
against.

Capture is off by default twice over: ``capture.enabled`` is false and no feature is listed.
Kept free of gateway, ledger and pricing imports so ``costwarden.config`` can include it.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Names of the built-in redactors (``distill/redaction.py``), in the order the default applies
# them: cards before phones (a grouped card number has a phone number's shape), secrets first
# (a key may hold digit runs). Anything else must be a hook written ``module:function``.
BUILTIN_REDACTORS = ("secret", "email", "card", "phone")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureCapture(_Model):
    """How one feature's pairs are captured. Listing a feature opts it in; ``enabled: false``
    pauses it without losing its settings."""

    enabled: bool = True
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    retention_days: float = Field(default=30.0, gt=0)
    # Applied in order to the messages before they are stored (and again on export).
    redact: tuple[str, ...] = BUILTIN_REDACTORS

    @field_validator("redact")
    @classmethod
    def _known_redactors(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for name in names:
            if name not in BUILTIN_REDACTORS and ":" not in name:
                known = ", ".join(BUILTIN_REDACTORS)
                raise ValueError(
                    f"redactor {name!r} is neither built in ({known}) nor a 'module:function' hook"
                )
        return names


class CaptureConfig(_Model):
    enabled: bool = False  # the master switch: false stores nothing, whatever is listed
    features: dict[str, FeatureCapture] = Field(default_factory=dict)
    # Pairs wait here for the background writer; a full queue drops (with a log line) rather
    # than slow a request down.
    queue_size: int = Field(default=1000, gt=0)
    batch_size: int = Field(default=100, gt=0)
    # A pair larger than this (prompt + answer JSON) is not kept: it would not be a sensible
    # fine-tuning example, and the queue must stay bounded in bytes too.
    max_pair_bytes: int = Field(default=256 * 1024, gt=0)
    purge_interval_s: float = Field(default=3600.0, gt=0)

    def active_features(self) -> dict[str, FeatureCapture]:
        """The features whose traffic is captured now (none when the switch is off)."""
        if not self.enabled:
            return {}
        return {name: f for name, f in self.features.items() if f.enabled and f.sample_rate > 0}


class TargetModel(_Model):
    """The small fine-tuned model a feature would move to, and what training it costs.

    The default is OpenAI's fine-tuned gpt-4o-mini-2024-07-18 (USD per million tokens,
    openai.com/api/pricing, as of 2025-06): input 0.30, output 1.20, training 3.00. ``model``
    names a configured model instead (e.g. a self-hosted 7B priced from its GPU hour), whose
    price then comes from the price book like any request's.
    """

    name: str = "gpt-4o-mini (fine-tuned)"
    model: str | None = None
    input_per_mtok: Decimal = Decimal("0.30")
    output_per_mtok: Decimal = Decimal("1.20")
    training_per_mtok: Decimal = Decimal("3.00")
    epochs: int = Field(default=3, ge=1)
    tokenizer_model: str = "gpt-4o-mini"  # whose encoding counts the training tokens
    # Fixed cost per month whatever the volume (a dedicated deployment's hosting fee).
    monthly_fixed_usd: Decimal = Decimal(0)


class CandidatesConfig(_Model):
    # A feature with no captured pairs is priced as if this many examples were trained on.
    default_training_examples: int = Field(default=1000, ge=10)
    max_training_examples: int = Field(default=10_000, ge=10)
    # Prompts whose estimated Jaccard similarity (word 3-shingles, MinHash) reaches this are
    # near-duplicates: the sign of a templated, learnable task. One word changed in a 25-word
    # template leaves ~0.78; LSH finds pairs at 0.7 with 99 % probability.
    near_duplicate_jaccard: float = Field(default=0.7, gt=0, le=1)
    # Features below this near-duplicate share (or with fewer than 10 captured examples) are
    # ranked after those above it: their saving is real, their learnability unproven.
    min_repetitiveness: float = Field(default=0.2, ge=0, le=1)
    max_analysed_pairs: int = Field(default=5000, gt=0)  # newest pairs per feature
    horizon_months: int = Field(default=12, ge=1)  # ranking: net saving over this long


class DistillConfig(_Model):
    capture: CaptureConfig = CaptureConfig()
    target: TargetModel = TargetModel()
    candidates: CandidatesConfig = CandidatesConfig()
