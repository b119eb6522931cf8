"""The web side (aiohttp): where frames leave for viewers.

``app`` builds the application and its routes; ``streaming`` sends a camera's frames to
each viewer; around it ``pages``, ``status`` and ``metrics`` answer people and monitoring,
``limits`` admits viewers, ``clients`` tells what kind of client asks, ``cors`` lets
other sites use the streams, and ``appkeys`` names what the application holds.
"""
