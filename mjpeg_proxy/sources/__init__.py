"""Sources: where a camera's frames enter, one module per upstream protocol.

Importing this package registers every source kind (``registry``), in the order the
configuration's messages list them; a new source is one module and one name on the first
import line here.
"""

# Imported for their registration, in the order of the kinds: not sorted, not used here.
from mjpeg_proxy.sources import demo, snapshot, mjpeg, een  # noqa: F401, I001
from mjpeg_proxy.sources.registry import DEFAULT_CAMERAS, KINDS, TABLES, SourceKind, build_source
from mjpeg_proxy.sources.upstreams import Upstreams

__all__ = ["DEFAULT_CAMERAS", "KINDS", "TABLES", "SourceKind", "Upstreams", "build_source"]
