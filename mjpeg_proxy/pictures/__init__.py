"""Pictures the proxy draws itself: the offline picture, error pictures, the demo camera's text."""
