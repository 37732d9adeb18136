"""The accuracy-vs-strong-calls picture of a ``router eval`` (matplotlib, Agg: no display)."""

from __future__ import annotations

from pathlib import Path

from costwarden.savings.router.evaluation import (
    LEXICAL,
    ORACLE,
    PRIOR,
    RANDOM,
    ROUTER,
    STRONG_FRACTION,
    EvalReport,
)

_STYLES: dict[str, dict[str, object]] = {
    ROUTER: {"color": "tab:blue", "linewidth": 2.2},
    LEXICAL: {"color": "tab:green", "linewidth": 1.2},
    PRIOR: {"color": "tab:orange", "linewidth": 1.2},
    RANDOM: {"color": "grey", "linestyle": "--", "linewidth": 1.2},
    ORACLE: {"color": "black", "linestyle": ":", "linewidth": 1.4},
}


def plot_curves(report: EvalReport, path: Path, title: str) -> Path:
    # Agg before pyplot loads: no display is needed (CI, servers).
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    figure, axes = plt.subplots(figsize=(7.5, 5.0), dpi=120)
    for name, curve in report.curves.items():
        style = _STYLES.get(name, {"linewidth": 1.4})
        axes.plot(100 * curve.share, 100 * curve.accuracy, label=name, **style)  # type: ignore[arg-type]
    goal = 100 * STRONG_FRACTION * report.strong_accuracy
    axes.axhline(goal, color="tab:red", linewidth=0.8, alpha=0.7)
    axes.text(1, goal + 0.3, "95 % of strong accuracy", color="tab:red", fontsize=8)
    for point in report.points:
        if point.target == "auto":
            axes.plot(100 * point.eval_share, 100 * point.eval_accuracy, "o", color="tab:blue")
            axes.annotate(
                "threshold from train",
                (100 * point.eval_share, 100 * point.eval_accuracy),
                textcoords="offset points",
                xytext=(8, -14),
                fontsize=8,
                color="tab:blue",
            )
    axes.set_xlabel("strong-model calls (%)")
    axes.set_ylabel("accuracy on held-out prompts (%)")
    axes.set_title(title, fontsize=10)
    axes.set_xlim(0, 100)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
