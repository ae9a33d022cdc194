"""A real Kubernetes control plane on 127.0.0.1 for the end-to-end tests.

`binaries` builds (once, cached by version) kube-apiserver, kubectl and etcd from the Go module
proxy through the harness module beside this file, and installs the reference
aws-iam-authenticator; `pki`, `kubeconfig` and `control_plane` start etcd and kube-apiserver on
loopback with temporary directories.
"""
