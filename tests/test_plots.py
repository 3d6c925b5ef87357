import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from cadm_utils.reporting import plots  # noqa: E402


def test_saving_an_unchanged_figure_twice_writes_the_same_bytes(tmp_path):
    figure = plt.figure(figsize=(2, 2))
    figure.gca().plot([0, 1], [1, 0])
    first = [p.read_bytes() for p in plots.save(figure, tmp_path / "a", "fig")]
    second = [p.read_bytes() for p in plots.save(figure, tmp_path / "b", "fig")]
    assert [p.suffix for p in plots.save(figure, tmp_path / "c", "fig")] == [".png", ".pdf"]
    assert first == second
    assert b"/CreationDate" not in first[1]  # else the bytes change from second to second
