"""Simple routers to judge the learned one against, trained on the same rows.

- ``lexical_scores``: bag of words alone (hashed TF-IDF, one logistic regression per model),
  scored like the learned router: P(strong right) - P(weak right).
- ``group_prior_scores``: the mean gain (strong - weak) of the prompt's group (the MMLU
  subject) on the training rows; a group never seen in training gets the overall mean. It
  knows the subject, which a gateway does not, so it is a generous baseline.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from costwarden.savings.router.data import RoutingData
from costwarden.savings.router.lexical import DEFAULT_COLUMNS, TfIdf
from costwarden.savings.router.linear import fit_logistic

Floats = npt.NDArray[np.float64]


def lexical_scores(
    train: RoutingData,
    prompts: Sequence[str],
    *,
    l2: float = 1e-4,
    steps: int = 300,
    columns: int = DEFAULT_COLUMNS,
) -> Floats:
    tfidf = TfIdf.fit(train.prompts, columns)
    rows = tfidf.transform(train.prompts)
    weak = fit_logistic(rows, train.weak, l2=l2, steps=steps, learning_rate=0.1)
    strong = fit_logistic(rows, train.strong, l2=l2, steps=steps, learning_rate=0.1)
    queries = tfidf.transform(prompts)
    result: Floats = strong.predict(queries) - weak.predict(queries)
    return result


def group_prior_scores(train: RoutingData, groups: Sequence[str]) -> Floats:
    gains: dict[str, list[float]] = defaultdict(list)
    for group, gain in zip(train.groups, train.strong - train.weak, strict=True):
        gains[group].append(float(gain))
    overall = float(np.mean(train.strong - train.weak))
    means = {group: float(np.mean(values)) for group, values in gains.items()}
    return np.asarray([means.get(g, overall) for g in groups], dtype=np.float64)
