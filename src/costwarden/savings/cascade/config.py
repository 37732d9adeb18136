"""Typed settings of model cascades (``savings.cascades``).

A cascade is a virtual model name: a client asks for it, and the gateway tries the cascade's
tiers (configured models) cheapest first, accepting the first answer whose score reaches that
tier's threshold. How the score is made is in ``savings.cascade_scoring``; how thresholds are
calibrated from labelled data is in ``savings.cascade_calibration``.

Kept free of the stages' imports (like ``savings.config``), so ``costwarden.config`` can
include it cheaply. That every tier is a configured model speaking one protocol is checked by
``Settings`` (``check_cascade_models``), where the models are known.
"""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Phrases that mark an answer as a refusal (score 0) or a hedge (score capped), matched
# case-insensitively on the answer text with curly apostrophes made straight. Short, common
# English openers of models' refusals; extend them for other languages or house styles.
DEFAULT_REFUSALS = (
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i'm unable to",
    "i am unable to",
    "i won't be able to",
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i cannot provide",
    "i can't provide",
)
DEFAULT_HEDGES = (
    "i'm not sure",
    "i am not sure",
    "i don't know",
    "i do not know",
    "i'm not certain",
    "i am not certain",
    "i cannot be certain",
    "i can't be certain",
    "hard to say",
    "it is unclear",
    "it's unclear",
)
DEFAULT_GRADING_PROMPT = (
    "You grade the assistant's last answer above. Reply with one integer from 0 to 10: "
    "10 if it fully and correctly answers the user's request, 0 if it is wrong, evasive or "
    "a refusal. Reply with the integer only."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CascadeTier(_Model):
    model: str  # a configured model
    # Accept this tier's answer when its score is at least this; the last tier takes none
    # (it is always accepted).
    threshold: float | None = Field(default=None, ge=0, le=1)


class VerifierConfig(_Model):
    """A cheap model that grades a tier's answer (0-10, read as a score of n/10)."""

    model: str  # a configured model speaking the tiers' protocol
    prompt: str = DEFAULT_GRADING_PROMPT
    max_tokens: int = Field(default=4, ge=1, le=64)  # a grade is one or two tokens


class ScorerConfig(_Model):
    """Which signals score an answer, and how they weigh (``cascade_scoring``)."""

    refusals: tuple[str, ...] = DEFAULT_REFUSALS  # empty: no refusal check
    hedges: tuple[str, ...] = DEFAULT_HEDGES  # empty: no hedge check
    hedge_cap: float = Field(default=0.3, ge=0, le=1)  # most a hedging answer can score
    # Ask OpenAI-chat tiers for token log-probabilities (stripped again unless the client
    # asked); turn off for models that refuse them (OpenAI's reasoning models).
    logprobs: bool = True
    logprob_weight: float = Field(default=1.0, ge=0)
    verifier: VerifierConfig | None = None
    verifier_weight: float = Field(default=1.0, ge=0)


class CascadeConfig(_Model):
    name: str = Field(min_length=1)  # the virtual model name clients ask for
    tiers: tuple[CascadeTier, ...] = Field(min_length=2)
    scorer: ScorerConfig = ScorerConfig()

    @model_validator(mode="after")
    def _thresholds(self) -> CascadeConfig:
        *lower, last = self.tiers
        missing = [t.model for t in lower if t.threshold is None]
        if missing:
            raise ValueError(f"cascade {self.name!r}: tiers {missing} need a threshold")
        if last.threshold is not None:
            raise ValueError(
                f"cascade {self.name!r}: the last tier ({last.model}) is always accepted "
                "and takes no threshold"
            )
        models = [t.model for t in self.tiers]
        if len(set(models)) != len(models):
            raise ValueError(f"cascade {self.name!r} lists a model twice: {models}")
        return self

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(t.model for t in self.tiers)


def check_cascade_models(
    cascades: tuple[CascadeConfig, ...], provider_of: Callable[[str], str | None]
) -> None:
    """Every tier and verifier is a configured model (``provider_of`` gives its protocol, None
    when unknown), all of one protocol — a tier gets the client's body as it came — and no
    cascade hides a configured model's name. Raises ValueError (a start-up failure)."""
    for cascade in cascades:
        if provider_of(cascade.name) is not None:
            raise ValueError(f"cascade {cascade.name!r} has the name of a configured model")
        verifier = cascade.scorer.verifier
        names = [*cascade.models, *([verifier.model] if verifier else [])]
        unknown = [n for n in names if provider_of(n) is None]
        if unknown:
            raise ValueError(f"cascade {cascade.name!r} names unconfigured models {unknown}")
        protocols = {n: provider_of(n) for n in names}
        if len(set(protocols.values())) > 1:
            raise ValueError(
                f"cascade {cascade.name!r} mixes protocols {protocols}: every tier and the "
                "verifier must speak the one the client uses"
            )
