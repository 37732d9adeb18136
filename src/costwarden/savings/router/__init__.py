"""The learned router: when a prompt needs the strong model (see docs/savings.md)."""
