//! Embedded Focus Server + Kubernetes API simulator.
