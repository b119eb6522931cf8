#!/usr/bin/env python3
"""Start mjpeg-proxy from a checkout: ``python run.py [--config FILE] [--host H] [--port P]``."""

import sys

from mjpeg_proxy.entry import main

if __name__ == "__main__":
    sys.exit(main())
