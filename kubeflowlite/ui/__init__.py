"""The web UI (`kubeflowlite ui`): DAGs, grid, graph, Gantt, task instances, logs, and the CLI's writes.

The Kubernetes API is its only source of truth: `source` reads and watches DAGs,
DAGRuns, Pods and XCom ConfigMaps with the user's (or the chart's) credentials,
and writes only what the CLI writes (a DAGRun, `spec.clear`, `spec.paused`).
`models` turns API objects into what the templates show (pure, unit-tested),
`graph` lays DAGs out with Graphviz, `informer` mirrors the DAGRuns with one
list-then-watch (what the grid and the DAG list read), `live` turns its changes into
the pages' server-sent events, and `app` wires them into a Starlette application. The
command (`command.py`) imports the web stack only when it runs.
"""
