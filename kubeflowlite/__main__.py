"""`python -m kubeflowlite`: the same command line as the `kubeflowlite` script.

The local runner uses it to start nested runs (triggerDag) with the interpreter
it runs under, whether or not the console script is on PATH.
"""

from kubeflowlite.cli.entry import main

if __name__ == "__main__":
    main(prog_name="kubeflowlite")
