import matplotlib

matplotlib.use("Agg")

from cadm_utils.reporting import plots  # noqa: E402


def test_saving_an_unchanged_figure_twice_writes_the_same_bytes(tmp_path):
    figure = matplotlib.pyplot.figure(figsize=(2, 2))
    figure.gca().plot([0, 1], [1, 0])
    first = [p.read_bytes() for p in plots.save(figure, tmp_path / "a", "fig")]
    second = [p.read_bytes() for p in plots.save(figure, tmp_path / "b", "fig")]
    assert [p.suffix for p in plots.save(figure, tmp_path / "c", "fig")] == [".png", ".pdf"]
    assert first == second
    assert b"/CreationDate" not in first[1]  # else the bytes change from second to second


def test_teaching_figures_draw_from_stored_arrays():
    import numpy as np

    from cadm_utils.reporting.analysis import ChannelActivation

    rng = np.random.default_rng(0)
    anatomy = {"block": np.array([2]), "scores": rng.random((12, 16)),
               "domains": np.repeat([0, 1, 3], 4), "mask": (rng.random((12, 16)) > 0.3) * 1.0,
               "history": rng.random((10, 3)) + 0.01, "history_steps": np.arange(10) * 8,
               "initial": rng.random((6, 8, 8, 3)), "final": rng.random((6, 8, 8, 3)),
               "labels": np.repeat([0, 1, 2], 2)}
    names = ["art", "cartoon", "photo", "sketch"]
    figures = [plots.step_scores_and_mask(anatomy, names, 0.33), plots.loss_curves(anatomy, 100.0),
               plots.before_after(anatomy, ["a", "b", "c"])]
    activations = {m: ChannelActivation(rng.random((3, 40)), [0, 1, 3]) for m in ("mmd", "cadm")}
    figures += [plots.fig3b_heatmap(activations, names),
                plots.fig1b_distribution({m: a.variance for m, a in activations.items()})]
    assert all(len(f.axes) >= 1 for f in figures)
    titles = [ax.get_title(loc="left") for ax in figures[2].axes if ax.get_title(loc="left")]
    assert titles == ["before", "after"]
