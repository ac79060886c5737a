"""Joining a Ray cluster: a quick probe that names why it cannot be joined, before `ray.init` retries for long.

`ray.init(address=...)` on a cluster it cannot join retries for about 20 s, printing Ray's own
warnings, and then says only "Failed to connect". The probe asks the cluster's GCS (the head's port)
two questions over gRPC, with the token Ray itself would send, and turns the answer into one line:
the address does not answer, the cluster wants a token that is not set (or another one), or the
cluster runs another Ray or Python than this machine (Ray refuses to mix versions).

Where the probe cannot run (a `ray://` client address, `auto`, Ray's generated stubs missing), it
steps aside and `ray.init` reports what it reports.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import StamError

PROBE_TIMEOUT_S = 5.0
TOKEN_HELP = (
    "set RAY_AUTH_TOKEN to the head's token, or RAY_AUTH_TOKEN_PATH to a file holding it, or copy the "
    "head's ~/.ray/auth_token to this machine (`ray get-auth-token` on the head prints it); "
    "RAY_AUTH_MODE=token on every node and here"
)


class ClusterError(StamError):
    """The cluster cannot be joined (unreachable, authentication, versions): nothing ran."""


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # where it was found, for the message when the cluster refuses it


def find_token() -> Token | None:
    """The token Ray would send, looked up where Ray looks: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return Token(os.environ["RAY_AUTH_TOKEN"].strip(), "RAY_AUTH_TOKEN")
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    for path, source in ((named, "RAY_AUTH_TOKEN_PATH"), (str(Path.home() / ".ray" / "auth_token"), None)):
        if not path:
            continue
        try:
            text = Path(path).read_text().strip()
        except OSError:
            if source:
                raise ClusterError(f"RAY_AUTH_TOKEN_PATH={path} cannot be read; {TOKEN_HELP}") from None
            continue
        if text:
            return Token(text, source or path)
    return None


def probe_address(address: str) -> str | None:
    """HOST:PORT of the GCS to probe, or None when the address is not one (`auto`, `ray://...`, `local`)."""
    if "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    return address if host and port.isdigit() else None


def probe(address: str) -> None:
    """ClusterError naming the cause when the cluster at `address` cannot be joined; quiet when it can."""
    target = probe_address(address)
    if target is None:
        return
    try:
        import grpc
        from ray.core.generated import gcs_service_pb2, gcs_service_pb2_grpc
    except ImportError:  # another Ray layout: ray.init speaks for itself
        return
    messages: Any = gcs_service_pb2  # protobuf makes the message classes at import time: no static attributes
    token = find_token()
    metadata = [("authorization", f"Bearer {token.value}")] if token else None
    with grpc.insecure_channel(target) as channel:
        try:
            gcs_service_pb2_grpc.NodeInfoGcsServiceStub(channel).GetClusterId(
                messages.GetClusterIdRequest(), timeout=PROBE_TIMEOUT_S, metadata=metadata
            )
            reply = gcs_service_pb2_grpc.InternalKVGcsServiceStub(channel).InternalKVGet(
                messages.InternalKVGetRequest(namespace=b"cluster", key=b"CLUSTER_METADATA"),
                timeout=PROBE_TIMEOUT_S,
                metadata=metadata,
            )
        except grpc.RpcError as error:
            raise ClusterError(rpc_failure(address, error, token)) from None
    if reply.value:
        check_versions(address, json.loads(reply.value))


def rpc_failure(address: str, error, token: Token | None) -> str:  # noqa: ANN001 - grpc.RpcError is also a Call
    """One line for a failed probe call: unreachable, no token, a wrong token, or not a Ray head."""
    import grpc

    code, details = error.code(), " ".join((error.details() or "").split())
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if token is None:
            return f"the Ray cluster at {address} requires an authentication token and none is set here: {TOKEN_HELP}"
        return f"the Ray cluster at {address} refuses the token from {token.source}: {TOKEN_HELP}"
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return (
            f"cannot reach a Ray cluster at {address} ({details or code.name}): is the head running "
            "(`ray start --head --port PORT`) and the port open from this machine?"
        )
    return f"{address} does not answer as a Ray cluster's head ({code.name}: {details})"


def check_versions(address: str, cluster: dict) -> None:
    """Ray joins only a cluster of its own version and Python (to the patch level unless
    RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL=minor): say both sides in one line before ray.init refuses."""
    import ray

    here = (ray.__version__, ".".join(map(str, sys.version_info[:3])))
    there = (str(cluster.get("ray_version")), str(cluster.get("python_version")))
    level = 2 if os.environ.get("RAY_DEFAULT_PYTHON_VERSION_MATCH_LEVEL") == "minor" else 3
    if here[0] == there[0] and here[1].split(".")[:level] == there[1].split(".")[:level]:
        return
    raise ClusterError(
        f"the Ray cluster at {address} runs Ray {there[0]} on Python {there[1]}, this machine Ray {here[0]} on "
        f"Python {here[1]}: the driver must match the cluster (pip install ray=={there[0]} on Python {there[1]})"
    )


def version_mismatch(message: str) -> str | None:
    """Ray's multi-line 'Version mismatch' as one line (for addresses the probe cannot ask)."""
    if "Version mismatch" not in message:
        return None
    return "; ".join(" ".join(line.split()) for line in message.splitlines() if line.strip())
