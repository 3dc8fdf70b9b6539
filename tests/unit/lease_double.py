"""kubectl as the renewal script of role kubeadm_certificates uses it on the Lease that one renewing control plane
holds at a time: ``lease_double.py FOLDER ARGUMENT...`` answers from ``FOLDER/lease.json`` and logs what it did to
``FOLDER/log``, one line each, as the API server would (create fails when the Lease exists, replace when its
resourceVersion moved on).

The state: ``api`` (false: no API server answers), ``etcd`` (false: the API server answers but reaches no etcd
quorum, so that its /readyz/etcd fails; every other call would hang until its timeout), ``lease`` (null, or holder,
renewTime, leaseDurationSeconds and resourceVersion), ``released_after_gets`` (the other holder releases the Lease
once it has been read that many times; null: never), ``api_refusals`` (how many calls are refused before the API
server answers again, as after a restart).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


class Cluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.state: dict[str, Any] = json.loads((folder / "lease.json").read_text())

    def save(self) -> None:
        (self.folder / "lease.json").write_text(json.dumps(self.state))

    def log(self, line: str) -> None:
        with (self.folder / "log").open("a") as out:
            out.write(line + "\n")

    def kubectl(self, arguments: list[str]) -> int:
        verb = next(a for a in arguments if a in ("create", "get", "replace", "delete"))
        if not self.state["api"] or self.state.get("api_refusals", 0) > 0:
            if self.state.get("api_refusals", 0) > 0:
                self.state["api_refusals"] -= 1
                self.save()
            print("The connection to the server 127.0.0.1:6444 was refused", file=sys.stderr)
            return 1
        if "--raw" in arguments:
            return self.readiness(arguments[arguments.index("--raw") + 1])
        if not self.state.get("etcd", True):
            self.log(f"{verb} waits for etcd until its request timeout")
            return 1
        lease = self.state["lease"]
        if verb == "get":
            return self.get(lease, arguments)
        if verb == "delete":
            self.log(f"delete lease of {lease['holder']}")
            self.state["lease"] = None
            self.save()
            return 0
        # Every scalar as the text sent: the API server reads the times as RFC 3339 strings, not YAML timestamps.
        sent = yaml.load(sys.stdin.read(), Loader=yaml.BaseLoader)
        if verb == "create" and lease is not None:
            print('leases.coordination.k8s.io "sensorstack-certificate-renewal" already exists', file=sys.stderr)
            return 1
        if verb == "replace" and (lease is None or sent["metadata"]["resourceVersion"] != lease["version"]):
            print("the object has been modified; please apply your changes to the latest version", file=sys.stderr)
            return 1
        version = str(int(lease["version"]) + 1) if lease else "1"
        spec = sent["spec"]
        self.state["lease"] = {
            "holder": spec["holderIdentity"],
            "renewTime": spec["renewTime"],
            "duration": int(spec["leaseDurationSeconds"]),
            "version": version,
        }
        self.log(f"{verb} lease for {spec['holderIdentity']} ({spec['leaseDurationSeconds']} s)")
        self.save()
        return 0

    def readiness(self, path: str) -> int:
        self.log(f"get {path}")
        if path != "/readyz/etcd":
            raise AssertionError(f"no such check in this double: {path}")
        if self.state.get("etcd", True):
            print("ok", end="")
            return 0
        print('Error from server (InternalError): an error on the server ("[-]etcd failed: reason withheld")')
        return 1

    def get(self, lease: dict[str, Any] | None, arguments: list[str]) -> int:
        if lease is not None and self.state.get("released_after_gets") is not None:
            self.state["released_after_gets"] -= 1
            if self.state["released_after_gets"] < 0:
                self.log(f"{lease['holder']} releases the lease")
                lease = self.state["lease"] = self.state["released_after_gets"] = None
            self.save()
        if lease is None and "--ignore-not-found" in arguments:
            return 0
        if lease is None:
            print('leases.coordination.k8s.io "sensorstack-certificate-renewal" not found', file=sys.stderr)
            return 1
        output = next(a for a in arguments if a.startswith("jsonpath="))
        fields = [lease["holder"], lease["renewTime"], str(lease["duration"]), lease["version"]]
        print("|".join(fields) if "|" in output else fields[0], end="")
        return 0


if __name__ == "__main__":
    folder, *arguments = sys.argv[1:]
    sys.exit(Cluster(Path(folder)).kubectl(arguments))
