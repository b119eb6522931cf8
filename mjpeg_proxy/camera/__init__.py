"""The camera core: where a camera's frames are held and fanned out to its viewers.

``frame.Frame`` is one picture; ``hub.FrameHub`` holds a camera's latest frame and hands
it to every viewer; ``camera.Camera`` runs the one fetch loop that feeds the hub from the
camera's source, on demand; ``camera_set.CameraSet`` runs every configured camera.
"""
