"""Test-only stand-in for torchvision, used by tests/test_text.py to import the reference `clip` package.

`clip` (PyPI `openai-clip`) imports `torchvision.transforms` at import time, but its text tower and tokenizer
need none of it, and torchvision has no CPU wheel in the pinned environment. The test puts tests/support on
`sys.path` only while importing `clip`, then removes these modules again. Never import this from library code.
"""
