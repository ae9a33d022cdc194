module kubeiam.local/bench/loadgen

go 1.22
