"""From a checked request to motions: the decoding loop, the network interface and its torch back end, the
public `Generator` API, editing, plans of several actions and the words about pace applied to a motion.

* `loop` -- the one decoding loop (numpy only) and its `Settings` / `Sampler`;
* `nets` -- the `Nets` interface the loop calls; `torch_nets` -- its torch implementation;
* `generate` -- `Generator` (any `Nets`) and `BAMM` (torch); `results` -- `Motion` and `Progress`;
* `editing` -- edit, extend, long sequences; `compose` -- a `Plan` as one motion; `pacing` -- a `Pace` applied.

May import: ``contract``, ``motion``, ``models`` (torch, loaded only inside `BAMM` and `torch_nets`).
"""
