//! Kubernetes label and field selectors.
