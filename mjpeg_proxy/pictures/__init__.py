"""Pictures the proxy draws itself: the offline picture, error pictures, the demo camera's text.

``fonts`` finds the fonts that have each character's glyph; ``drawing`` draws lines of
text on a JPEG with them; ``resize`` makes a camera's frame narrower (``?width=``).
"""
