"""Monitoring: anomaly detection on hourly spend, request and token series, and its evaluation."""
