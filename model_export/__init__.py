"""The demonstration model: a small 3D U-Net trained on synthetic CT phantoms, exported to ONNX
and TorchScript with a manifest (``python -m model_export train``, then ``export``).

Modules: ``synthetic`` (phantoms with ground truth), ``unet`` (the network), ``training``,
``evaluation`` (held-out Dice and recall), ``export`` (files, parity check, manifest), ``docs``.
Imports ``domain`` for the manifest schema and torch; never ``adapters`` or ``entrypoints``.
"""
