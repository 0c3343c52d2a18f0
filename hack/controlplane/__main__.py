"""`hack/cluster up|down|env|status`: the control plane for people, same code as the tests use.

`up` starts a plane and remembers it (a pointer file in the tools cache); `env` prints
the export line for it; `down` stops it (or the one whose state dir is given) and
leaves no process and no temp dir behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .cluster import ControlPlane, ControlPlaneError, build_tools
from .node import NodeError

POINTER = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "kubeflowlite" / "current-cluster"


def _current() -> ControlPlane | None:
    try:
        state_dir = Path(POINTER.read_text().strip())
        return ControlPlane.load(state_dir)
    except (OSError, ValueError, KeyError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hack/cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start a control plane (stops the previous one first)")
    up.add_argument(
        "--node",
        choices=("kwok", "real"),
        default="kwok",
        help="kwok: three simulated nodes (default); real: one real node (containerd, kubelet) where Pods run",
    )
    down = sub.add_parser("down", help="stop the control plane")
    down.add_argument("state_dir", nargs="?", type=Path)
    sub.add_parser(
        "env",
        help="print the exports for the running plane: KUBECONFIG, PATH (helm, kubectl), KFL_HELM_VALUES",
    )
    load = sub.add_parser(
        "load-image",
        help="build an image (default: the operator's, as the Dockerfile) and load it into the real node",
    )
    load.add_argument(
        "image", nargs="?", default="kubeflowlite", choices=("kubeflowlite", "python", "busybox")
    )
    sub.add_parser("status", help="show the components and whether they run")
    args = parser.parse_args(argv)

    if args.command == "up":
        previous = _current()
        if previous is not None:
            previous.stop()
        try:
            plane = ControlPlane.start(build_tools(), nodes=args.node)
        except (ControlPlaneError, NodeError) as err:
            print(f"cluster: {err}", file=sys.stderr)
            return 1
        plane.adopt()
        POINTER.parent.mkdir(parents=True, exist_ok=True)
        POINTER.write_text(str(plane.state_dir))
        print(f"control plane ready in {plane.started_seconds:.1f}s at {plane.server}", file=sys.stderr)
        print(f"state and logs: {plane.state_dir}", file=sys.stderr)
        print(f"export KUBECONFIG={plane.kubeconfig}")
        return 0
    if args.command == "down":
        plane = ControlPlane.load(args.state_dir) if args.state_dir else _current()
        if plane is None:
            print("cluster: no control plane is running", file=sys.stderr)
            return 0
        plane.stop()
        if not args.state_dir:
            POINTER.unlink(missing_ok=True)
        return 0
    plane = _current()
    if plane is None:
        print("cluster: no control plane is running (hack/cluster up)", file=sys.stderr)
        return 1
    if args.command == "env":
        print(f"export KUBECONFIG={plane.kubeconfig}")
        print(f"export PATH={plane.bin_dir}:$PATH")  # helm and kubectl of the plane's version
        if plane.helm_values.exists():
            print(f"export KFL_HELM_VALUES={plane.helm_values}")
    elif args.command == "load-image":
        try:
            print(f"loaded {plane.load_image(args.image)} into node {plane.node_name}", file=sys.stderr)
        except ControlPlaneError as err:
            print(f"cluster: {err}", file=sys.stderr)
            return 1
    else:
        for name, ok in plane.alive().items():
            print(f"{name:<26}{'running' if ok else 'DEAD'}")
        if plane.node_kind == "real":
            print(f"{'real node ' + plane.node_name:<26}{'running' if plane.real_node_alive() else 'DEAD'}")
        print(f"server {plane.server}\nstate  {plane.state_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
