"""Sources: one module per upstream protocol, each yielding frames for one camera.

Importing this package registers every source kind (``registry``), in the order the
configuration's messages list them; a new source is one module and one line here.
"""

from mjpeg_proxy.sources import demo, snapshot, mjpeg, een  # noqa: I001 - the kinds' order
from mjpeg_proxy.sources.base import Source
from mjpeg_proxy.sources.registry import KINDS, TABLES, SourceKind, build_source
from mjpeg_proxy.sources.upstreams import Upstreams

__all__ = ["KINDS", "TABLES", "Source", "SourceKind", "Upstreams", "build_source", "demo", "een", "mjpeg", "snapshot"]
