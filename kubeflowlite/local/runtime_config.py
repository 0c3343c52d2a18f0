"""Variables and Connections for local runs: environment variables first, then a JSON file.

On a cluster they live in labelled ConfigMaps and Secrets (k8s.runtime_config); on
a laptop the same templates (`{{ var.value.x }}`, `{{ conn.my_db.host }}`) and the
same task environment (AIRFLOW_CONN_<ID>) read:

- Variables: KFL_VAR_<name>, else the JSON object in the file named by
  KFL_VARIABLES_FILE (the seed's habit: variables in a JSON file; non-string
  values are kept as JSON text, so `var.json.x` reads them back);
- Connections: AIRFLOW_CONN_<ID> (URI or JSON), else the JSON object in the file
  named by KFL_CONNECTIONS_FILE (conn id -> URI string or Airflow's JSON object).
"""

from __future__ import annotations

from collections.abc import Mapping

from kubeflowlite.core import connections, variables

VARIABLES_FILE_ENV = variables.VARIABLES_FILE_ENV
CONNECTIONS_FILE_ENV = "KFL_CONNECTIONS_FILE"


class LocalConfigError(ValueError):
    """A variables or connections file that cannot be used."""


def local_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """Variable texts by name: KFL_VAR_* over the variables file (core.variables.local)."""
    try:
        return variables.local(environ)
    except ValueError as error:
        raise LocalConfigError(str(error)) from None


def local_connections(environ: Mapping[str, str]) -> dict[str, str]:
    """Connection texts by id: AIRFLOW_CONN_* over the connections file."""
    try:
        from_file = variables.texts_from_file(environ, CONNECTIONS_FILE_ENV)
    except ValueError as error:
        raise LocalConfigError(str(error)) from None
    return {**from_file, **connections.connections_from_env(environ)}
