"""The worker process the Blender add-on talks to, and what it needs around the model.

* `worker` -- ``python -m model_core.serving.worker``: JSON lines on stdin / stdout;
* `protocol` -- the check of every line the worker reads;
* `model_spec` -- the model a spec names (ONNX Runtime or torch), and its limits without loading it;
* `outputs` -- safe output files (a temporary file renamed into place, a free numbered name).

May import: ``contract``, ``decoding``, ``runtime``. Starts without numpy (it reports a missing numpy itself).
"""
