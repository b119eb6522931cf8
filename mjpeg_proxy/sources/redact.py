"""Safe text for logs and status pages: URLs without credentials or queries."""

from yarl import URL


def safe_url(url: str | URL) -> str:
    """Return ``url`` without user, password, query or fragment.

    A query may hold a session key (EEN's ``A=``) or a token, so none is shown.
    """
    u = URL(url) if isinstance(url, str) else url
    try:
        return str(u.with_user(None).with_query(None).with_fragment(None))
    except ValueError:  # a relative or otherwise odd URL: show only its path
        return u.path
