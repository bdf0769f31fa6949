"""boards.pareto: a row reads the evaluation and the generator's estimate; the figure is drawn."""
import json

from boards import pareto
from python_ref.checkpoint import ZOO


def test_row_holds_the_evaluation_the_estimate_and_null_placed_figures(tmp_path):
    r = pareto.row("resnet8", ZOO / "resnet8", "fine-tuned (zoo)", "ecp5-85f", limit=20,
                   progress=False)
    assert r["n_images"] == 20 and r["K"] == 10 and r["neurons"] == 737_280
    # the shipped ResNet8 on the ecp5-85f: the figures of its committed board result
    board = json.loads((pareto.REPO / "docs/results/boards/ulx3s-85f_resnet8.json").read_text())
    assert r["est_cycles_per_image"] == board["cycles_per_image"]
    assert all(r[k] is None for k in pareto.PLACED)
    png = pareto.plot([r, dict(r, conversion="plain", K=6)], tmp_path / "p.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
