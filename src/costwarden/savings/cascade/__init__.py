"""Model cascades: cheap tiers first, escalation on a low score (see docs/savings.md)."""
