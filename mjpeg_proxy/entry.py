"""The programs' entry point: ``mjpeg-proxy``, ``python -m mjpeg_proxy`` and ``run.py``."""

import signal


def main() -> int:
    """Run the command line (``mjpeg_proxy.cli.main``) with SIGHUP ignored from the first moment.

    By default a SIGHUP (``systemctl reload``, logrotate) kills a process, and importing
    the proxy takes a tenth of a second before its reload handler takes over.
    """
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    from mjpeg_proxy.cli import main as run_command_line

    return run_command_line()
