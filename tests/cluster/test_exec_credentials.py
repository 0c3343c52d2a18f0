"""Credentials that expire: an exec plugin's tokens, renewed in time by our client and by kopf's.

The plugin (a shell script, run as kubectl would run it) asks the apiserver for a
ServiceAccount token bound to a Secret it creates for that token, and declares the
token expired LIFETIME seconds later. The TokenRequest API will not issue tokens for
less than ten minutes, so the test makes the expiry real itself: a revoker deletes
each token's Secret once its declared expiry has passed, and the apiserver then
refuses the token (401; after at most the 10 s for which kube-apiserver caches a
token's authentication). Nothing here needs a flag of the control plane.

- our client renews ahead of expiry: a stream of requests across several lifetimes
  never meets a 401;
- our client renews on a 401: a token revoked before its time is replaced and the
  request sent again, once;
- the operator (kopf's watches and patches, and our client) keeps reconciling runs
  across several lifetimes with nothing but the exec kubeconfig.
"""

from __future__ import annotations

import asyncio
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import Api, OperatorProcess, dag_manifest

from kubeflowlite.k8s import kube

LIFETIME = 8
"""Seconds a token is declared (and, through the revoker, made) valid."""
SA = "kfl-exec"

PLUGIN = """#!/bin/sh
set -e
LIFETIME=$(cat "$STATE/lifetime" 2>/dev/null || echo "$LIFETIME")
n=$(cat "$STATE/count" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$STATE/count"
kubectl --kubeconfig "$ADMIN" -n "$NS" create secret generic "kfl-cred-$n" >/dev/null
token=$(kubectl --kubeconfig "$ADMIN" -n "$NS" create token "$SA" --duration 10m \\
    --bound-object-kind Secret --bound-object-name "kfl-cred-$n")
expires=$(date -u -d "+$LIFETIME seconds" +%Y-%m-%dT%H:%M:%SZ)
echo "$n $(date -u -d "+$LIFETIME seconds" +%s)" >> "$STATE/issued"
printf '{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",'
printf ' "status": {"token": "%s", "expirationTimestamp": "%s"}}' "$token" "$expires"
"""


@dataclass
class ExecLogin:
    kubeconfig: Path
    state: Path
    revoke: Callable[[int], None]

    @property
    def issued(self) -> int:
        path = self.state / "count"
        return int(path.read_text()) if path.exists() else 0

    def wait_until_all_refused(self) -> None:
        """Until every token issued so far has expired, been revoked, and left the apiserver's cache."""
        issued = self.state / "issued"
        last = max(int(line.split()[1]) for line in issued.read_text().splitlines())
        time.sleep(max(0.0, last + 11 - time.time()))


@pytest.fixture
def exec_login(cluster: Any, namespace: str, tmp_path: Path) -> Iterator[ExecLogin]:
    """A kubeconfig whose user is the exec plugin; a revoker thread enforces each token's expiry."""
    binding = f"{namespace}-{SA}"
    cluster.kubectl("create", "serviceaccount", SA, "-n", namespace)
    cluster.kubectl(
        "create",
        "clusterrolebinding",
        binding,
        "--clusterrole=cluster-admin",
        f"--serviceaccount={namespace}:{SA}",
    )
    state = tmp_path / "plugin-state"
    state.mkdir()
    plugin = tmp_path / "plugin.sh"
    plugin.write_text(PLUGIN)
    plugin.chmod(plugin.stat().st_mode | stat.S_IEXEC)
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    env = {
        "STATE": str(state),
        "ADMIN": str(cluster.kubeconfig),
        "NS": namespace,
        "SA": SA,
        "LIFETIME": str(LIFETIME),
    }
    exec_config = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "./plugin.sh",
        "interactiveMode": "Never",
        "env": [{"name": key, "value": value} for key, value in env.items()],
    }
    kubeconfig = tmp_path / "exec-kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "contexts": [
                    {
                        "name": "exec",
                        "context": {**context["context"], "user": "exec", "namespace": namespace},
                    }
                ],
                "current-context": "exec",
                "users": [{"name": "exec", "user": {"exec": exec_config}}],
            }
        )
    )

    revoked: set[int] = set()

    def revoke(number: int) -> None:
        if number not in revoked:
            revoked.add(number)
            cluster.kubectl("delete", "secret", f"kfl-cred-{number}", "-n", namespace, "--wait=false")

    stop = threading.Event()

    def revoker() -> None:
        while not stop.wait(0.25):
            issued = state / "issued"
            for line in issued.read_text().splitlines() if issued.exists() else []:
                number, expires = (int(part) for part in line.split())
                if time.time() >= expires:
                    revoke(number)

    thread = threading.Thread(target=revoker, daemon=True)
    thread.start()
    yield ExecLogin(kubeconfig=kubeconfig, state=state, revoke=revoke)
    stop.set()
    thread.join(timeout=5)
    cluster.kubectl("delete", "clusterrolebinding", binding, check=False)


def test_our_client_renews_ahead_of_expiry_and_after_a_401(exec_login: ExecLogin, namespace: str) -> None:
    statuses: list[int] = []

    async def scenario() -> None:
        config = kube.load_cluster_config(str(exec_login.kubeconfig))
        assert config.exec_plugin is not None and config.token is None
        async with kube.Kube(config, on_request=lambda verb, resource, code: statuses.append(code)) as client:
            began = time.monotonic()
            while time.monotonic() - began < 3 * LIFETIME:  # three lifetimes of steady use
                await client.list_objects(kube.PODS, namespace)
                await asyncio.sleep(0.5)
            assert 401 not in statuses, "a request went out with an expired token"
            assert exec_login.issued >= 3
            # Revoked before its time: the next request meets a 401, renews, and is sent again.
            # (With a long-lived token, so no renewal ahead of expiry comes first; the apiserver
            # caches a token's authentication for up to 10 s, so the refusal takes that long.)
            (exec_login.state / "lifetime").write_text("300")
            issued = exec_login.issued
            while exec_login.issued == issued:
                await client.list_objects(kube.PODS, namespace)
                await asyncio.sleep(0.2)
            current = config.tokens.cached()
            assert current is not None and current.expires is not None
            exec_login.revoke(exec_login.issued)
            deadline = time.monotonic() + 30
            while 401 not in statuses and time.monotonic() < deadline:
                await client.list_objects(kube.PODS, namespace)
                await asyncio.sleep(0.2)
            assert 401 in statuses, "the revoked token was never refused"
            assert statuses[-1] == 200 and statuses[statuses.index(401) + 1] == 200
            renewed = config.tokens.cached()
            assert renewed is not None and renewed.value != current.value

    asyncio.run(scenario())


def test_the_operator_keeps_working_across_token_lifetimes(
    exec_login: ExecLogin, api: Api, start_operator: Callable[..., OperatorProcess]
) -> None:
    operator = start_operator(f"--kubeconfig={exec_login.kubeconfig}")
    api.apply(
        dag_manifest(
            "rotating", [{"name": "a", "bash": "true"}, {"name": "b", "bash": "true", "dependsOn": ["a"]}]
        )
    )
    first = exec_login.issued
    for day in (1, 2, 3):
        # Every token the operator holds is dead by now: this run needs a new one (renewed on use).
        run = api.create_run("rotating", f"2024-01-0{day}T00:00:00Z")
        finished = api.wait_run(run, timeout=60)
        assert finished["status"]["state"] == "success", operator.log()
        exec_login.wait_until_all_refused()
    log = operator.log()
    assert "LoginError" not in log and "401" not in log and "Unauthorized" not in log, log
    assert exec_login.issued >= first + 2, "the operator did not renew its token"
