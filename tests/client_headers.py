"""The request headers real clients send, and what kind of client each is
(``mjpeg_proxy.web.clients``).

"Recorded" rows were captured from the client itself on 127.0.0.1 (the headers of one GET
of a ``stream.mjpg`` URL); the others come from the client's source or documentation,
named in the row. Only headers that bear on the decision are kept (``Accept``,
``User-Agent``, ``Sec-Fetch-*``), in the client's spelling.

Browsers send ``Sec-Fetch-*`` only to potentially trustworthy origins: Chromium's
"https or localhost" rows were recorded on http://127.0.0.1, its "plain http" rows on
http://lan-camera.test (mapped to 127.0.0.1 with ``--host-resolver-rules``).
"""

from __future__ import annotations

from typing import NamedTuple

from mjpeg_proxy.web.clients import ClientKind

CHROMIUM_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36"
)
CHROMIUM_NAVIGATION_ACCEPT = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/jxl,image/avif,image/webp,image/apng,*/*;q=0.8,"
    "application/signed-exchange;v=b3;q=0.7"
)
CHROMIUM_IMAGE_ACCEPT = "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
FIREFOX_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_UA = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)


class Client(NamedTuple):
    name: str
    headers: dict[str, str]
    kind: ClientKind
    source: str


CLIENTS = [
    # --- browsers -----------------------------------------------------------------------
    Client(
        "chromium-156-address-bar-https-or-localhost",
        {
            "User-Agent": CHROMIUM_UA,
            "Accept": CHROMIUM_NAVIGATION_ACCEPT,
            "Sec-Fetch-Site": "none",
            "Sec-Fetch-Mode": "navigate",
            "Sec-Fetch-User": "?1",
            "Sec-Fetch-Dest": "document",
        },
        ClientKind.PAGE,
        "recorded",
    ),
    Client(
        "chromium-156-address-bar-plain-http",
        {"User-Agent": CHROMIUM_UA, "Accept": CHROMIUM_NAVIGATION_ACCEPT},
        ClientKind.PAGE,
        "recorded",
    ),
    Client(
        "chromium-156-iframe",
        {
            "User-Agent": CHROMIUM_UA,
            "Accept": CHROMIUM_NAVIGATION_ACCEPT,
            "Sec-Fetch-Site": "same-origin",
            "Sec-Fetch-Mode": "navigate",
            "Sec-Fetch-Dest": "iframe",
        },
        ClientKind.PAGE,
        "Fetch Metadata: Sec-Fetch-Dest of an iframe's navigation",
    ),
    Client(
        "chromium-156-img-https-or-localhost",
        {
            "User-Agent": CHROMIUM_UA,
            "Accept": CHROMIUM_IMAGE_ACCEPT,
            "Sec-Fetch-Site": "same-origin",
            "Sec-Fetch-Mode": "no-cors",
            "Sec-Fetch-Dest": "image",
        },
        ClientKind.IMAGE,
        "recorded",
    ),
    Client(
        "chromium-156-img-plain-http",
        {"User-Agent": CHROMIUM_UA, "Accept": CHROMIUM_IMAGE_ACCEPT},
        ClientKind.IMAGE,
        "recorded",
    ),
    Client(
        "chromium-156-fetch",
        {
            "User-Agent": CHROMIUM_UA,
            "Accept": "*/*",
            "Sec-Fetch-Site": "same-origin",
            "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Dest": "empty",
        },
        ClientKind.TOOL,
        "Fetch standard: fetch() sends Accept */* and destination empty",
    ),
    Client(
        "chromium-156-fetch-asking-for-an-image-https-or-localhost",
        {
            "User-Agent": CHROMIUM_UA,
            "Accept": "image/jpeg",
            "Sec-Fetch-Site": "same-origin",
            "Sec-Fetch-Mode": "cors",
            "Sec-Fetch-Dest": "empty",
        },
        ClientKind.IMAGE,
        "the index's snapshot refresh (templates/index.html): fetch() with Accept image/jpeg",
    ),
    Client(
        "firefox-92+-address-bar-plain-http",
        {
            "User-Agent": FIREFOX_UA,
            "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
        },
        ClientKind.PAGE,
        "MDN, List of default Accept values (Firefox 92 and later)",
    ),
    Client(
        "firefox-92+-img-plain-http",
        {"User-Agent": FIREFOX_UA, "Accept": "image/avif,image/webp,*/*"},
        ClientKind.IMAGE,
        "MDN, List of default Accept values (Firefox 92 and later, images)",
    ),
    Client(
        "safari-address-bar-plain-http",
        {"User-Agent": SAFARI_UA, "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
        ClientKind.PAGE,
        "MDN, List of default Accept values (Safari); the Fetch standard's navigation default",
    ),
    Client(
        "safari-img-plain-http",
        {"User-Agent": SAFARI_UA, "Accept": "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"},
        ClientKind.IMAGE,
        "MDN, List of default Accept values (Safari since macOS Big Sur, images)",
    ),
    # --- players, libraries, tools ------------------------------------------------------
    Client("curl-7.88", {"User-Agent": "curl/7.88.1", "Accept": "*/*"}, ClientKind.TOOL, "recorded"),
    Client("wget-1.21", {"User-Agent": "Wget/1.21.3", "Accept": "*/*"}, ClientKind.TOOL, "recorded"),
    Client(
        "ffmpeg-5.1-and-opencv",
        {"User-Agent": "Lavf/59.27.100", "Accept": "*/*", "Icy-MetaData": "1"},
        ClientKind.TOOL,
        "recorded (ffmpeg); OpenCV's VideoCapture reads HTTP through the same libavformat",
    ),
    Client(
        "vlc-3.0",
        {"User-Agent": "VLC/3.0.24 LibVLC/3.0.24", "Accept": "*/*", "Accept-Language": "en_US"},
        ClientKind.TOOL,
        "recorded",
    ),
    Client(
        "gstreamer-souphttpsrc-and-opencv",
        {"User-Agent": "GStreamer souphttpsrc 1.22.0 libsoup/3.2.2", "Icy-MetaData": "1"},
        ClientKind.TOOL,
        "gst-plugins-good ext/soup/gstsouphttpsrc.c: DEFAULT_USER_AGENT, no Accept (OpenCV's GStreamer backend)",
    ),
    Client(
        "java-17-httpurlconnection",
        {"User-Agent": "Java/17.0.15", "Accept": "text/html, image/gif, image/jpeg, */*; q=0.2"},
        ClientKind.TOOL,
        "recorded",
    ),
    Client(
        "java-8-httpurlconnection",
        {"User-Agent": "Java/1.8.0_392", "Accept": "text/html, image/gif, image/jpeg, *; q=.2, */*; q=.2"},
        ClientKind.TOOL,
        "JDK 8 sun.net.www.protocol.http.HttpURLConnection: acceptString",
    ),
    Client(
        "java-app-posing-as-a-browser",
        {
            "User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            "Accept": "text/html, image/gif, image/jpeg, */*; q=0.2",
        },
        ClientKind.TOOL,
        "HttpURLConnection's default Accept with a User-Agent set by the application",
    ),
    Client("java-17-httpclient", {"User-Agent": "Java-http-client/17.0.15"}, ClientKind.TOOL, "recorded (no Accept)"),
    Client(
        "python-requests",
        {"User-Agent": "python-requests/2.32.3", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"},
        ClientKind.TOOL,
        "requests.utils.default_headers",
    ),
    Client("python-urllib", {"User-Agent": "Python-urllib/3.11"}, ClientKind.TOOL, "recorded (no Accept)"),
    Client(
        "python-aiohttp",
        {"User-Agent": "Python/3.11 aiohttp/3.14.5", "Accept": "*/*", "Accept-Encoding": "gzip, deflate"},
        ClientKind.TOOL,
        "recorded",
    ),
    Client(
        "go-net-http",
        {"User-Agent": "Go-http-client/1.1", "Accept-Encoding": "gzip"},
        ClientKind.TOOL,
        "Go net/http request.go: defaultUserAgent, no Accept",
    ),
    Client(
        "home-assistant",
        {"User-Agent": "HomeAssistant/2024.6.0 aiohttp/3.9.5 Python/3.12", "Accept": "*/*"},
        ClientKind.TOOL,
        "homeassistant/helpers/aiohttp_client.py: SERVER_SOFTWARE on aiohttp's default Accept",
    ),
    Client(
        "motion-netcam",
        {"User-Agent": "Motion-netcam/4.5.1"},
        ClientKind.TOOL,
        "motion src/netcam.c: connect_req_http11, no Accept (motionEye's cameras read through it)",
    ),
    Client(
        "motioneye-url-test",
        {"User-Agent": "Mozilla/5.0 (compatible; pycurl)", "Accept": "*/*"},
        ClientKind.TOOL,
        "motionEye configures tornado's CurlAsyncHTTPClient, whose default User-Agent this is; libcurl's Accept",
    ),
]

BROWSER_PAGE = next(c.headers for c in CLIENTS if c.name == "firefox-92+-address-bar-plain-http")
"""A browser navigating, on a plain-http page (no Fetch Metadata)."""
BROWSER_IMAGE = next(c.headers for c in CLIENTS if c.name == "chromium-156-img-plain-http")
"""A browser's ``<img>``, on a plain-http page (no Fetch Metadata)."""
TOOL = next(c.headers for c in CLIENTS if c.name == "curl-7.88")
