"""Test-only stand-in for setuptools' pkg_resources: `clip` only uses `pkg_resources.packaging.version`."""

import packaging
import packaging.version

__all__ = ["packaging"]
