"""Files a person reads: results.json (every number), results.md, and the Cross mAP heatmap."""

from __future__ import annotations

from pathlib import Path

from .result import EvalResult


def write_outputs(result: EvalResult, out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(result.to_json())
    (out / "results.md").write_text(result.to_markdown())
    paths = [out / "results.json", out / "results.md"]
    backend = "exact" if "exact" in result.backends else next(iter(result.backends), None)
    if backend:
        paths.append(plot_cross_map(result, backend, out / "cross_map.png"))
    return paths


def plot_cross_map(result: EvalResult, backend: str, path: Path) -> Path:
    """Query language (rows) x candidate language (columns) mAP; the diagonal is Mono."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    table = result.backends[backend].cross_map
    langs = sorted(table)
    cols = sorted({y for row in table.values() for y in row})
    grid = np.array([[table[x].get(y, np.nan) for y in cols] for x in langs])
    fig, ax = plt.subplots(figsize=(1 + 0.6 * len(cols), 1 + 0.5 * len(langs)))
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(langs)), langs)
    ax.set_xlabel("candidate language")
    ax.set_ylabel("query language")
    ax.set_title(f"Cross mAP ({backend}), {result.model}", fontsize=9)
    for i in range(len(langs)):
        for j in range(len(cols)):
            if not np.isnan(grid[i, j]):
                color = "white" if grid[i, j] < 0.5 else "black"
                ax.text(
                    j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=7, color=color
                )
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
