"""How a bash task runs inside its Pod, and how its return value comes back.

Locally a bash task that writes nothing to `$KFL_XCOM_FILE` returns the last
non-empty line of its output (core.xcom.last_line_xcom, as Airflow's
BashOperator). In a Pod nothing but the container's termination message comes
back to the operator, so the task's script runs under a small POSIX `sh` wrapper
(busybox `sh`, dash and bash all run it) that:

1. runs the script with `sh -c`, its stderr merged into its stdout as locally,
   streaming both to the container log through `tee`;
2. keeps the script's exit code (no `pipefail` needed: the code goes through a file);
3. when the script succeeded and wrote no value itself, writes the last non-empty
   output line to the termination message file, marked with LAST_LINE_MARK, or,
   if the line is too long to fit, LINE_TOO_LONG_MARK and its length in bytes.

`decode_termination_message` reads that back and applies core.xcom's rules to
it, so the value (or the error) is the one the local runner gets. Both ends of
this small protocol live here. Lines are split as the local runner splits them
for the usual separators (\\n, \\r, \\v, \\f, \\x1c-\\x1e); the Unicode line
separators U+0085, U+2028 and U+2029 are not split in a Pod, and a line made only
of non-ASCII whitespace (a no-break space, say) is text there, not blank.
"""

from __future__ import annotations

from typing import Any

from kubeflowlite.core import xcom

LAST_LINE_MARK = "\x1e"
"""Starts a termination message that holds a raw last output line (no JSON value starts with it)."""
LINE_TOO_LONG_MARK = "\x1e\x1e"
"""Starts a termination message that holds only the byte length of a last line too long to keep."""

_MAX_RAW_LINE = xcom.XCOM_LIMIT_BYTES - len(LAST_LINE_MARK)

WRAPPER = f"""\
kfl_out=$(mktemp) && kfl_rc=$(mktemp) || exit 1
{{ sh -c "$1" sh 2>&1; echo "$?" >"$kfl_rc"; }} | tee "$kfl_out"
rc=$(cat "$kfl_rc")
if [ "$rc" = 0 ] && ! grep -q '[^[:space:]]' "$KFL_XCOM_FILE" 2>/dev/null; then
  line=$(tr '\\r\\013\\014\\034\\035\\036' '\\n\\n\\n\\n\\n\\n' <"$kfl_out" | grep -v '^[[:space:]]*$' | tail -n 1 | sed 's/[[:space:]]*$//')
  if [ -n "$line" ]; then
    n=$(printf '%s' "$line" | wc -c)
    if [ "$n" -le {_MAX_RAW_LINE} ]; then
      printf '\\036%s' "$line" >"$KFL_XCOM_FILE"
    else
      printf '\\036\\036%s' "$n" >"$KFL_XCOM_FILE"
    fi
  fi
fi
rm -f "$kfl_out" "$kfl_rc"
exit "$rc"
"""
"""`sh -c WRAPPER kfl-task SCRIPT`: the bash task's script is the wrapper's $1."""


def bash_command(script: str) -> list[str]:
    """The container command of a bash task: the wrapper, with the task's own script as an argument."""
    return ["sh", "-c", WRAPPER, "kfl-task", script]


def decode_termination_message(text: str) -> Any:
    """The XCom value a main container's termination message carries (NO_XCOM if none).

    Raises core.xcom.XComError with the message the user sees as the task's failure.
    """
    if text.startswith(LINE_TOO_LONG_MARK):
        length = text[len(LINE_TOO_LONG_MARK) :].strip()
        raise xcom.XComError(xcom.last_line_too_long(int(length) if length.isdigit() else None))
    if text.startswith(LAST_LINE_MARK):
        return xcom.last_line_xcom(text[len(LAST_LINE_MARK) :])
    try:
        return xcom.parse_xcom_file(text)
    except xcom.XComError as error:
        if len(text.encode("utf-8")) >= xcom.XCOM_LIMIT_BYTES:
            raise xcom.XComError(
                f"{error} (the kubelet keeps only {xcom.XCOM_LIMIT_BYTES} bytes of a termination message: "
                "the value is too large)"
            ) from None
        raise
