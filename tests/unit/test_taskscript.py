"""The bash task wrapper of k8s.taskscript, run by real shells, against the local rule.

The wrapper is what a bash task's Pod runs; these tests run it with the shells a
task image may have (busybox `sh`, as in the default image, and dash, Debian's
`sh`) and check that the value `decode_termination_message` reads back from the
termination message file equals what the local runner's rule (core.xcom) takes
from the same output, that the exit code and the log survive, and that a value
the task wrote itself is left alone.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kubeflowlite.core import xcom
from kubeflowlite.k8s import taskscript

BUSYBOX = "/bin/busybox"
SHELLS = {"busybox": [BUSYBOX, "sh"], "dash": ["/bin/dash"]}


def run_wrapped(shell: str, script: str, tmp: Path) -> tuple[int, str, str]:
    """Run `script` under the wrapper as a Pod would; (exit code, log, termination message)."""
    message = tmp / "xcom.json"
    message.write_text("")  # the kubelet creates the file empty
    env = {"PATH": "/usr/bin:/bin", "KFL_XCOM_FILE": str(message), "TMPDIR": str(tmp)}
    if shell == "busybox":
        # Only busybox applets on PATH, as in the default task image.
        bindir = tmp / "bin"
        if not bindir.exists():
            bindir.mkdir()
            for applet in (
                "sh",
                "cat",
                "tee",
                "grep",
                "tail",
                "tr",
                "wc",
                "sed",
                "printf",
                "mktemp",
                "rm",
                "echo",
            ):
                os.symlink(BUSYBOX, bindir / applet)
        env["PATH"] = str(bindir)
    argv = taskscript.bash_command(script)
    completed = subprocess.run(
        [*SHELLS[shell], *argv[1:]], env=env, capture_output=True, text=True, timeout=30
    )
    return completed.returncode, completed.stdout, message.read_text()


def local_value(script: str, tmp: Path) -> Any:
    """What the local runner takes from the same script: its output's last line (core.xcom)."""
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    return xcom.last_line_xcom(out.stdout + out.stderr)


@pytest.fixture(params=sorted(SHELLS))
def shell(request: pytest.FixtureRequest) -> str:
    assert Path(SHELLS[request.param][0]).exists(), (
        f"{SHELLS[request.param][0]} is missing (hack/system-packages)"
    )
    return str(request.param)


def test_last_line_comes_back_with_exit_code_and_log(shell: str, tmp_path: Path) -> None:
    code, log, message = run_wrapped(shell, "echo first; echo 'oops' >&2; echo '  chosen  '; echo", tmp_path)
    assert code == 0
    assert log.splitlines() == ["first", "oops", "  chosen  ", ""]
    assert taskscript.decode_termination_message(message) == "  chosen"


def test_failing_script_keeps_its_code_and_returns_nothing(shell: str, tmp_path: Path) -> None:
    code, log, message = run_wrapped(shell, "echo partial; exit 7", tmp_path)
    assert (code, log, message) == (7, "partial\n", "")


def test_value_written_by_the_task_is_left_alone(shell: str, tmp_path: Path) -> None:
    code, _, message = run_wrapped(shell, 'echo \'{"rows": 3}\' > "$KFL_XCOM_FILE"; echo done', tmp_path)
    assert code == 0
    assert taskscript.decode_termination_message(message) == {"rows": 3}


def test_no_output_is_no_value(shell: str, tmp_path: Path) -> None:
    _, _, message = run_wrapped(shell, "true", tmp_path)
    assert taskscript.decode_termination_message(message) is xcom.NO_XCOM


def test_line_over_the_limit_fails_as_locally(shell: str, tmp_path: Path) -> None:
    script = "printf 'x%.0s' $(seq 1 5000); echo"
    if shell == "busybox":
        script = "i=0; s=x; while [ $i -lt 13 ]; do s=$s$s; i=$((i+1)); done; echo $s"  # 8192 x's, no seq
    code, _, message = run_wrapped(shell, script, tmp_path)
    assert code == 0
    with pytest.raises(xcom.XComError) as on_node:
        taskscript.decode_termination_message(message)
    with pytest.raises(xcom.XComError) as locally:
        local_value(script, tmp_path)
    assert str(on_node.value) == str(locally.value)
    assert len(message.encode()) < xcom.XCOM_LIMIT_BYTES  # the kubelet would keep it whole


def test_line_at_the_limit_is_kept_whole(shell: str, tmp_path: Path) -> None:
    line = "é" * 2047  # 4094 bytes, 4096 as a JSON string: exactly the limit
    code, _, message = run_wrapped(shell, f"echo '{line}'", tmp_path)
    assert code == 0
    assert len(json.dumps(line, ensure_ascii=False).encode()) == xcom.XCOM_LIMIT_BYTES
    assert taskscript.decode_termination_message(message) == line


# Excluded, as the module says: NUL (no shell passes it), the quote the test script
# uses, the Unicode line separators and lines made only of non-ASCII whitespace.
lines = st.lists(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\x85\u2028\u2029'"),
        max_size=40,
    ).filter(lambda line: bool(line.strip()) or not line.strip(" \t\n\r\x0b\x0c\x1c\x1d\x1e")),
    max_size=5,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(output=lines)
def test_any_output_gives_the_local_value(output: list[str], tmp_path: Path) -> None:
    script = "".join(f"printf '%s\\n' '{line}'\n" for line in output)
    for name in SHELLS:
        _, _, message = run_wrapped(name, script, tmp_path)
        assert taskscript.decode_termination_message(message) == local_value(script, tmp_path), name
