"""Visibility: anomaly detection, alerts, forecasts and what-if replay over the ledger."""
