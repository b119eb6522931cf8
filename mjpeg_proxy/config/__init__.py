"""The configuration: a TOML file (read with ``tomllib``) checked into typed records.

Every mistake becomes one ``ConfigError`` whose message names the file, the camera
id and the field, so start-up can stop with one clear line.

``checks`` holds the field checks every table uses; ``server`` the ``[server]`` table;
``camera`` what every ``[[cameras]]`` entry has (each source kind reads its own section,
``mjpeg_proxy.sources.registry``); ``live`` the whole configuration and the one in force;
``loader`` reads a file (import it from there: it imports the source kinds, which import
this package).
"""

from mjpeg_proxy.config.camera import CameraConfig, SourceConfig
from mjpeg_proxy.config.checks import ConfigError
from mjpeg_proxy.config.live import RESTART_KEYS, Config, LiveConfig
from mjpeg_proxy.config.server import ANY_ORIGIN, LOOPBACK, ServerConfig

__all__ = [
    "ANY_ORIGIN",
    "LOOPBACK",
    "RESTART_KEYS",
    "CameraConfig",
    "Config",
    "ConfigError",
    "LiveConfig",
    "ServerConfig",
    "SourceConfig",
]
