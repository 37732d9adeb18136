"""The semantic cache: same-meaning questions answered from cache (see docs/savings.md)."""
