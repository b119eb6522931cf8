"""``python -m mjpeg_proxy`` runs the same command line as ``mjpeg-proxy``."""

import sys

from mjpeg_proxy.entry import main

sys.exit(main())
