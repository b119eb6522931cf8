"""The camera core: where a camera's frames are held and fanned out to its viewers.

Frames come in from the camera's source (``sources/``); ``frame.Frame`` is one picture;
``hub.FrameHub`` holds a camera's latest frame and hands it to every viewer
(``web/streaming``); ``camera.Camera`` feeds the hub from the camera's source, on demand
(``demand``), through ``fetch.FetchLoop`` (stalls, retries), with its ``state``, its
``offline`` picture and its ``stats``, timed by ``timing.CameraTiming``;
``scaled.ScaledStreams`` holds its streams at the widths viewers ask for (``?width=``);
``feed.Feed`` is where a camera's frames come from (the seam for frames from elsewhere);
``source.Source`` is what ``FetchLoop`` reads frames from (``sources/`` implements it).
"""
