"""The MJPEG and JPEG protocol, bytes in and bytes out."""
