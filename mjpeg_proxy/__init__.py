"""mjpeg-proxy: fetch each camera's frames once, re-broadcast them to every viewer as MJPEG."""

__version__ = "0.1.0"
