//! A real Kubernetes control plane for a test (issue 27): Kubernetes' own kube-apiserver,
//! controller-manager and scheduler on etcd, with kwok's fake GPU nodes, started by
//! `scripts/real-kube.sh up` from binaries built from source (`scripts/real-kube.sh build`,
//! about 27 minutes cold on 2 cores; `.ci/run` builds them, cached under ~/.cache/focusqa-kube).
//!
//! When the binaries are missing the tests that need one print a notice and pass, except with
//! `CI` set, where they are required (as `required_tool` does). `FOCUSQA_REAL_KUBE=0` skips them
//! on purpose (a notice, even in CI). At most [`AT_ONCE`] control planes run at a time (a slot
//! held for the life of a [`RealKube`]): most of a real-cluster test is waiting on real time (a
//! cleanup job's 50 s), so two overlap well on 2 cores, where more would slow each other into
//! timeouts.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Condvar, Mutex};

/// Control planes running at once in this process.
pub const AT_ONCE: usize = 2;
static SLOTS: Mutex<[bool; AT_ONCE]> = Mutex::new([false; AT_ONCE]);
static FREED: Condvar = Condvar::new();

/// One of the [`AT_ONCE`] slots, given back when dropped.
struct Slot(usize);

impl Slot {
    fn take() -> Slot {
        let mut slots = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(i) = slots.iter().position(|used| !used) {
                slots[i] = true;
                return Slot(i);
            }
            slots = FREED.wait(slots).unwrap_or_else(|p| p.into_inner());
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        SLOTS.lock().unwrap_or_else(|p| p.into_inner())[self.0] = false;
        FREED.notify_one();
    }
}

pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/real-kube.sh")
}

/// The control plane of one test: its own state dir and ports; stopped when dropped.
pub struct RealKube {
    pub state: tempfile::TempDir,
    pub port: u16,
    pub kubeconfig: PathBuf,
    pub kubectl: PathBuf,
    /// Declared last: given back after `Drop` stopped the control plane.
    _slot: Slot,
}

fn skip(why: &str) -> Option<RealKube> {
    if std::env::var_os("CI").is_some() && std::env::var("FOCUSQA_REAL_KUBE").as_deref() != Ok("0")
    {
        panic!("{why}; CI must run the real control plane tests (.ci/run builds it: scripts/real-kube.sh build)");
    }
    eprintln!("NOTICE: {why}; skipping a real control plane test (scripts/real-kube.sh build, then cargo test)");
    None
}

impl RealKube {
    /// `None` (with a notice) when the binaries are not built here or `FOCUSQA_REAL_KUBE=0`.
    pub fn up() -> Option<RealKube> {
        Self::up_with(&[])
    }

    /// As [`RealKube::up`], with settings of `scripts/real-kube.sh up` (e.g.
    /// `FOCUSQA_KUBE_GPUS_PER_NODE`).
    pub fn up_with(settings: &[(&str, &str)]) -> Option<RealKube> {
        if std::env::var("FOCUSQA_REAL_KUBE").as_deref() == Ok("0") {
            eprintln!("NOTICE: FOCUSQA_REAL_KUBE=0: real control plane tests skipped");
            return None;
        }
        let status = match Command::new("bash").arg(script()).arg("status").output() {
            Ok(o) => o,
            Err(e) => return skip(&format!("bash {}: {e}", script().display())),
        };
        let text = String::from_utf8_lossy(&status.stdout).to_string();
        if !status.status.success() || text.contains("not built") {
            return skip(&format!(
                "the real control plane is not built here:\n{text}"
            ));
        }
        let kubectl = text
            .lines()
            .find_map(|l| l.strip_prefix("binary kubectl: "))
            .map(PathBuf::from)
            .expect("status names kubectl");
        let slot = Slot::take();
        let state = tempfile::tempdir().unwrap();
        // Five ports from a base of our own per slot (the script's default is 26443), below the
        // kernel's ephemeral range (32768 and up), where the other tests' connections take theirs.
        let port = 20_000 + ((std::process::id() % 600) as usize * AT_ONCE + slot.0) as u16 * 5;
        let out = Command::new("bash")
            .arg(script())
            .arg("up")
            .env("FOCUSQA_KUBE_STATE", state.path())
            .env("FOCUSQA_KUBE_PORT", port.to_string())
            .envs(settings.iter().copied())
            .output()
            .unwrap();
        let kube = RealKube {
            kubeconfig: state.path().join("admin.kubeconfig"),
            state,
            port,
            kubectl,
            _slot: slot,
        };
        if !out.status.success() {
            panic!(
                "scripts/real-kube.sh up failed:\n{}\n{}",
                String::from_utf8_lossy(&out.stderr),
                kube.log_tails()
            );
        }
        let last = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(
            last,
            format!("KUBECONFIG={}", kube.kubeconfig.display()),
            "the last line names the kubeconfig"
        );
        Some(kube)
    }

    /// The last lines of each component's log (they go with the state dir when dropped).
    pub fn log_tails(&self) -> String {
        let mut logs = String::new();
        for n in [
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
        ] {
            let text = std::fs::read_to_string(self.state.path().join(format!("logs/{n}.log")))
                .unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(8).collect();
            logs.push_str(&format!("--- {n}.log (last lines)\n"));
            for l in tail.iter().rev() {
                logs.push_str(l);
                logs.push('\n');
            }
        }
        logs
    }

    /// kubectl against this cluster; returns stdout, panics with stderr on failure.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_output(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// kubectl against this cluster, whatever its exit status.
    pub fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        use std::io::Write;
        let mut child = Command::new(&self.kubectl)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        child.wait_with_output().unwrap()
    }
}

impl Drop for RealKube {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script())
            .arg("down")
            .env("FOCUSQA_KUBE_STATE", self.state.path())
            .env("FOCUSQA_KUBE_PORT", self.port.to_string())
            .output();
    }
}

// --- helpers of the issue 27 tests (real_kube_watch, real_kube_apf, real_kube_rbac) ---------

impl RealKube {
    /// `scripts/real-kube.sh ARGS` on this control plane; stdout, panics with stderr on failure.
    pub fn script(&self, args: &[&str]) -> String {
        let out = Command::new("bash")
            .arg(script())
            .args(args)
            .env("FOCUSQA_KUBE_STATE", self.state.path())
            .env("FOCUSQA_KUBE_PORT", self.port.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "scripts/real-kube.sh {args:?}:\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log_tails()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills kube-apiserver (SIGKILL, its process group) and starts it again with the flags of
    /// `up` plus `flags`; returns when /readyz says ok.
    pub fn restart_apiserver(&self, flags: &[&str]) {
        let mut args = vec!["restart-apiserver"];
        args.extend_from_slice(flags);
        self.script(&args);
    }

    /// The cluster's CA certificate (PEM), as a pod's service account mount has it.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.state.path().join("pki/ca.crt")).unwrap()
    }

    /// A kubeconfig (text) that authenticates with a bearer token, e.g. a service account's
    /// from `kubectl create token`.
    pub fn token_kubeconfig(&self, token: &str, namespace: &str) -> String {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: real\n  cluster: {{server: \"https://127.0.0.1:{}\", certificate-authority-data: {ca}}}\nusers:\n- name: token\n  user: {{token: {token}}}\ncontexts:\n- name: real\n  context: {{cluster: real, user: token, namespace: {namespace}}}\ncurrent-context: real\n",
            self.port
        )
    }

    /// A focusqa project whose target `real` reaches this cluster through `kubernetes` (the
    /// YAML of the target's `kubernetes:` map, e.g. `{kubeconfig: k.yaml, namespace: focus}`);
    /// its Focus API is not used.
    pub fn project(&self, kubernetes: &str) -> super::Project {
        let p = super::Project::new("http://127.0.0.1:9");
        std::fs::write(
            p.path().join("focusqa.yaml"),
            format!("default_target: real\nscope: none\ntargets:\n  real:\n    base_url: http://127.0.0.1:9\n    kubernetes: {kubernetes}\n"),
        )
        .unwrap();
        p
    }

    /// Polls `cond` every 100 ms for up to `secs` seconds; panics with `what` and the logs.
    pub fn wait_for(&self, what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
        let t0 = std::time::Instant::now();
        while !cond() {
            assert!(
                t0.elapsed().as_secs() < secs,
                "{what}: not after {secs} s\n{}",
                self.log_tails()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
