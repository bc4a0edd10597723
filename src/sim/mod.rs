//! Embedded Focus Server + Kubernetes API simulator.
//! PLACEHOLDER on main until the simulator branch lands: same public API, no behaviour.

#[derive(Clone, Debug)]
pub struct SimConfig {
    pub time_scale: f64,
    pub capacity: usize,
    pub seed: u64,
    pub namespace: String,
    pub stream_ip: String,
    pub port_range: (u16, u16),
    pub instance: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            time_scale: 1.0,
            capacity: 200,
            seed: 42,
            namespace: "focus".into(),
            stream_ip: "10.10.10.100".into(),
            port_range: (50051, 50350),
            instance: 18,
        }
    }
}

pub struct SimHandle {
    config: SimConfig,
}

impl SimHandle {
    pub fn focus_url(&self) -> String {
        String::new()
    }
    pub fn kube_url(&self) -> String {
        String::new()
    }
    pub fn config(&self) -> &SimConfig {
        &self.config
    }
    pub fn write_kubeconfig(&self, _path: &std::path::Path) -> std::io::Result<()> {
        Ok(())
    }
    pub async fn shutdown(self) {}
}

pub async fn start(config: SimConfig, _focus_port: u16, _kube_port: u16) -> std::io::Result<SimHandle> {
    Ok(SimHandle { config })
}
