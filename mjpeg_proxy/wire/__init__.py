r"""The MJPEG and JPEG protocol, bytes in and bytes out.

Imports nothing but the standard library and its own modules, so it can be lifted into
another project as it is (copy the folder, and rename ``mjpeg_proxy.wire`` in its imports):

- ``reader``: ``MultipartReader`` turns the bytes of an upstream's
  ``multipart/x-mixed-replace`` stream, fed as they arrive, into complete JPEGs;
- ``jpeg``: ``cut_jpeg`` finds where a JPEG really ends (cameras append bytes after it);
- ``writer``: ``MultipartWriter`` builds the parts of a stream of our own;
- ``errors``: ``WireError``, the base of what they raise.

Read a stream that comes in pieces, cut a JPEG, and send the frames on::

    >>> from mjpeg_proxy.wire.jpeg import cut_jpeg
    >>> from mjpeg_proxy.wire.reader import MultipartReader, boundary_from_content_type
    >>> from mjpeg_proxy.wire.writer import MultipartWriter
    >>> jpeg = bytes.fromhex("ffd8 fffe 0004 6869 ffd9")  # start, a comment "hi", end
    >>> body = b"--cam\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n--cam\r\n"
    >>> boundary = boundary_from_content_type("multipart/x-mixed-replace; boundary=cam")
    >>> reader = MultipartReader(boundary, max_frame_bytes=1 << 20)
    >>> frames = reader.feed(body[:30]) + reader.feed(body[30:])
    >>> [frame.jpeg for frame in frames]
    [b'\xff\xd8\xff\xfe\x00\x04hi\xff\xd9']
    >>> cut_jpeg(jpeg + b"stale buffer bytes")
    CutJpeg(jpeg=b'\xff\xd8\xff\xfe\x00\x04hi\xff\xd9', trimmed=True)
    >>> writer = MultipartWriter("frames")
    >>> writer.content_type
    'multipart/x-mixed-replace;boundary=frames'
    >>> body = writer.opening + writer.part(frames[0].jpeg, timestamp=1.5)
    >>> for line in body.split(b"\r\n"):
    ...     print(line)
    b'--frames'
    b'Content-Type: image/jpeg'
    b'Content-Length: 10'
    b'X-Timestamp: 1.500000'
    b''
    b'\xff\xd8\xff\xfe\x00\x04hi\xff\xd9'
    b'--frames'
    b''
"""
