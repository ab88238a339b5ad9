"""`crucible view`: a local web page over the store's rows (loopback only; see docs/view.md)."""

from __future__ import annotations

import argparse
import sys


def port_number(text: str) -> int:
    """``--port``: an integer from 0 to 65535 (0 = any free port); anything else is a usage error (exit 2)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number: give an integer from 0 to 65535") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is outside 0..65535: give a port from 0 to 65535 (0 = any free "
                                         "port)")
    return port


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("view", help="browse questions, trajectories, SWE instances and failures in a web page")
    p.add_argument("--out", default="data", help="the store (output directory) to show (default: data)")
    p.add_argument("--port", type=port_number, default=8765, help="port on 127.0.0.1, 0..65535 (0 = any free port)")
    p.set_defaults(func=_view)


def _view(args) -> int:
    from crucible.pipelines.view.server import ViewServer

    try:
        server = ViewServer(args.out, port=args.port)
    except FileNotFoundError as exc:
        print(f"crucible: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"crucible: cannot listen on 127.0.0.1:{args.port} ({exc.strerror}); pick another with --port",
              file=sys.stderr)
        return 2
    print(f"crucible view: {server.url}  (store {args.out}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
    return 0
