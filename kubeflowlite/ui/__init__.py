"""The web UI (`kubeflowlite ui`): DAGs, grid, graph, Gantt, task instances, logs, and the CLI's writes.

The Kubernetes API is its only source of truth: `source` reads and watches DAGs,
DAGRuns, Pods and XCom ConfigMaps with the user's (or the chart's) credentials,
and writes only what the CLI writes (a DAGRun, `spec.clear`, `spec.paused`).
`models` turns API objects into what the templates show (pure, unit-tested),
`graph` lays DAGs out with Graphviz, `live` follows runs for the grid's
server-sent events, and `app` wires them into a Starlette application. The
command (`command.py`) imports the web stack only when it runs.
"""
