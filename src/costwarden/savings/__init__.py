"""Savings: stages on the request path that cut spend (cache, cascade, routing, trimming),
and the offline tools that calibrate and evaluate them on real data."""
