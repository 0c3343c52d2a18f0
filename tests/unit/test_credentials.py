"""k8s.credentials: tokens from a real exec credential plugin (a shell script), renewed on time.

Boundary: the plugin is a real executable run through the kubernetes package's
ExecProvider, as kubectl would run it; the clock is injected, so "time passes"
without sleeping. tests/cluster/test_credentials.py proves the same against the
apiserver, with tokens that really stop working.
"""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from kubeflowlite.k8s import kube
from kubeflowlite.k8s.credentials import CredentialError, ExecPlugin, TokenSource

T0 = datetime(2030, 1, 1, tzinfo=UTC)
LIFETIME = timedelta(minutes=10)

PLUGIN = """#!/bin/sh
n=$(cat "$COUNTER" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$COUNTER"
printf '{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",'
printf ' "status": {"token": "token-%s", "expirationTimestamp": "%s"}}' "$n" "$EXPIRES"
"""


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def plugin(tmp_path: Path, *, expires: datetime = T0 + LIFETIME, script: str = PLUGIN) -> ExecPlugin:
    path = tmp_path / "plugin.sh"
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    config = {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "./plugin.sh",
        "interactiveMode": "Never",
        "env": [
            {"name": "COUNTER", "value": str(tmp_path / "count")},
            {"name": "EXPIRES", "value": expires.isoformat().replace("+00:00", "Z")},
        ],
    }
    return ExecPlugin.from_config(config, cwd=str(tmp_path))


def test_a_token_is_renewed_once_most_of_its_life_has_passed(tmp_path: Path) -> None:
    clock = Clock()
    source = TokenSource(exec_plugin=plugin(tmp_path), clock=clock)
    first = source.token()
    assert first is not None and first.value == "token-1" and first.expires == T0 + LIFETIME
    assert first.renew_at == T0 + LIFETIME - timedelta(minutes=1)  # 20 % of 10 min is more than the 1 min cap
    clock.now = T0 + timedelta(minutes=8, seconds=59)
    assert not source.due() and source.token() == first  # cached: the plugin does not run
    clock.now = T0 + timedelta(minutes=9)
    assert source.due()
    second = source.token()
    assert second is not None and second.value == "token-2" and source.renewals == 2


def test_a_short_lived_token_is_renewed_at_80_percent(tmp_path: Path) -> None:
    clock = Clock()
    source = TokenSource(exec_plugin=plugin(tmp_path, expires=T0 + timedelta(seconds=10)), clock=clock)
    token = source.token()
    assert token is not None and token.renew_at == T0 + timedelta(seconds=8)


def test_a_refused_token_is_renewed_once_for_all_callers(tmp_path: Path) -> None:
    source = TokenSource(exec_plugin=plugin(tmp_path), clock=Clock())
    refused = source.token()
    renewed = source.renew(refused)
    assert renewed is not None and renewed.value == "token-2"
    assert source.renew(refused) == renewed  # a second caller refused the same token: no new run
    assert (tmp_path / "count").read_text().strip() == "2"


def test_a_fixed_token_never_changes(tmp_path: Path) -> None:
    source = TokenSource(token="fixed")
    assert not source.changes and not source.due()
    token = source.renew(source.token())
    assert token is not None and token.value == "fixed"


def test_a_failing_plugin_is_a_clear_error(tmp_path: Path) -> None:
    failing = plugin(tmp_path, script="#!/bin/sh\necho 'no login' >&2\nexit 3\n")
    with pytest.raises(CredentialError, match=r"exec credential plugin './plugin.sh' failed"):
        TokenSource(exec_plugin=failing).token()
    no_token = plugin(
        tmp_path,
        script='#!/bin/sh\necho \'{"apiVersion": "client.authentication.k8s.io/v1", '
        '"kind": "ExecCredential", "status": {"clientCertificateData": "x", "clientKeyData": "y"}}\'\n',
    )
    with pytest.raises(CredentialError, match="client certificates from exec plugins are not supported"):
        TokenSource(exec_plugin=no_token).token()


def test_a_kubeconfig_with_an_exec_user_gives_a_renewable_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    exec_plugin = plugin(tmp_path)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "c",
                "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u", "namespace": "team"}}],
                "clusters": [{"name": "k", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"exec": yaml.safe_load(exec_plugin.config_json)}}],
            }
        )
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the relative command is found from the kubeconfig's directory, not the cwd
    config = kube.load_cluster_config(str(kubeconfig))
    assert config.exec_plugin == exec_plugin and config.token is None and config.namespace == "team"
    assert config.tokens.changes
    token = config.tokens.token()
    assert token is not None and token.value.startswith("token-")
