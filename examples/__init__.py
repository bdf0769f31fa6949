"""Two "bring your own model" examples: networks defined outside the project, trained, exported
to ONNX and taken through ``python -m python_ref.convert --onnx`` (see ``examples/README.md``)."""
