"""The request contract: what a caller may ask for, checked before any model loads. Pure Python.

* `limits` -- `InputError`, the weights' `Limits`, and the checks of single fields every caller shares;
* `request` -- `Request` (generate / edit / extend / plan) and its defaults, checked by `Request.check`;
* `plan` -- a prompt naming several actions as a `Plan` of steps, and `check_plan`;
* `kinds` -- the kind of an action (locomotion, arm, body) from its first verb;
* `amounts` -- a prompt's words about length and pace, as a `Pace`.

May import: ``data`` (the caption words and part-of-speech table the plan reads). Never numpy or torch.
"""
