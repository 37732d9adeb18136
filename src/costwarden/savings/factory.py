"""Build the configured savings stages, in their fixed order (see ``stages``)."""

from __future__ import annotations

from costwarden.distill.capture import build_capture_stage
from costwarden.savings.cascade.stage import CascadeStage
from costwarden.savings.exact_cache import (
    CacheStore,
    ExactCacheStage,
    MemoryCacheStore,
    RedisCacheStore,
)
from costwarden.savings.router.stage import RouterStage
from costwarden.savings.semantic.stage import SemanticCacheStage
from costwarden.savings.services import StageServices
from costwarden.savings.stages import BaseStage, SavingsStages
from costwarden.savings.trimming.stage import TrimmingStage


def _cache_store(services: StageServices) -> CacheStore:
    config = services.settings.savings.exact_cache
    state = services.settings.state
    if (config.backend or state.backend) == "redis":
        return RedisCacheStore(state.redis_url, state.key_prefix)
    return MemoryCacheStore(config.max_entries)


def build_stages(services: StageServices) -> SavingsStages:
    savings = services.settings.savings
    stages: list[BaseStage] = []
    if savings.trimming.enabled:
        stages.append(TrimmingStage(savings.trimming, services))
    if savings.routers:
        stages.append(RouterStage(savings.routers, services))
    if savings.cascades:
        stages.append(CascadeStage(savings.cascades, services))
    if savings.exact_cache.enabled:
        stages.append(ExactCacheStage(savings.exact_cache, _cache_store(services)))
    if savings.semantic_cache.enabled:
        stages.append(SemanticCacheStage.from_services(savings.semantic_cache, services))
    if (capture := build_capture_stage(services.settings)) is not None:
        stages.append(capture)  # last: it only watches answers (distill/capture.py)
    return SavingsStages(stages)
