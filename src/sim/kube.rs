//! Kubernetes API server subset.
use super::Shared;
use axum::Router;
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().with_state(shared)
}
