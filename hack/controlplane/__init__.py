"""The hermetic Kubernetes control plane used by kubeflowlite's tests and developers."""
