"""The web side: where frames leave for viewers (``streaming``), and the pages, status,
metrics and limits around them (aiohttp)."""
