"""The example in ``mjpeg_proxy.wire``'s docstring runs, so it cannot rot."""

from __future__ import annotations

import doctest

import mjpeg_proxy.wire


def test_the_package_docstring_example_runs():
    results = doctest.testmod(mjpeg_proxy.wire, optionflags=doctest.ELLIPSIS, raise_on_error=False)
    assert results.attempted >= 10
    assert results.failed == 0
