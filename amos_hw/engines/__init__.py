"""Layer engines: streaming :class:`amaranth.lib.wiring.Component` s, one module per op kind.

Every engine consumes AMOS spike words and, after its ReLU AMOS unit, produces spike words, so the
generator chains them with :func:`amaranth.lib.wiring.connect`. Each engine states its expected
cycles per image and its LUT / flip-flop / memory-bit estimates as properties before synthesis,
and its static ``figures(...)`` (the constructor's arguments) gives the same numbers as a
:class:`~amos_hw.engines.figures.Figures` without building anything
(:mod:`amos_hw.engines.figures`); see ``docs/architecture.md``.
"""
from amos_hw.engines.conv import ConvEngine
from amos_hw.engines.dense import DenseEngine
from amos_hw.engines.depthwise import DepthwiseConvEngine
from amos_hw.engines.figures import Figures
from amos_hw.engines.gap import GlobalAvgPoolEngine
from amos_hw.engines.gate import GateEngine
from amos_hw.engines.pool import AvgPoolEngine, MaxPoolEngine
from amos_hw.engines.residual import ResidualAddEngine
from amos_hw.engines.unit import UnitEngine
from amos_hw.engines.window import SlidingWindow

__all__ = [
    "AvgPoolEngine",
    "ConvEngine",
    "DenseEngine",
    "DepthwiseConvEngine",
    "Figures",
    "GateEngine",
    "GlobalAvgPoolEngine",
    "MaxPoolEngine",
    "ResidualAddEngine",
    "SlidingWindow",
    "UnitEngine",
]
