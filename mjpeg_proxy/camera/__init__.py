"""The camera core: where a camera's frames are held and fanned out to its viewers.

Frames come in from the camera's source (``sources/``); ``frame.Frame`` is one picture;
``hub.FrameHub`` holds a camera's latest frame and hands it to every viewer
(``web/streaming``); ``camera.Camera`` runs the one fetch loop that feeds the hub, on
demand, with its backoff, state and offline picture; ``camera_set.CameraSet`` runs every
configured camera.
"""
