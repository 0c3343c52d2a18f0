"""Python DAG files: the DSL users write (`with DAG(...)`, tasks, `>>`, `@task`) and its compiler.

`model` (DAGs), `tasks` and `taskflow` import only the standard library (a Python task's process
imports its DAG file again); `compile` turns a DAG into the API resource and
`files` imports DAG files and finds the DAGs they define.
"""
