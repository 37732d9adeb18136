"""Distillation: capture a feature's request/response pairs (opt-in, redacted, with a
retention period), rank features by what a small fine-tuned model would save, and export a
feature's pairs as an OpenAI fine-tuning JSONL. See docs/distill.md."""
