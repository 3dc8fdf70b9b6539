"""Run the Grafana API double in the foreground, e.g. to try the modules by hand.

python -m tests.grafana_double --port 3000 --user admin --password s3cret --token glsa_mytoken
"""

from __future__ import annotations

import argparse
import contextlib
import threading

from .server import GrafanaDouble


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", required=True, help="the basic-auth password the double accepts")
    parser.add_argument("--token", default=None, help="a service-account token the double accepts (Bearer)")
    arguments = parser.parse_args()
    double = GrafanaDouble(arguments.port, arguments.user, arguments.password, arguments.token)
    with double:
        print(f"Grafana API double on {double.url} (Ctrl-C stops it)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
