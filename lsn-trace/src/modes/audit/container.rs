//! Which container, which pod: a container's name and image, and for Kubernetes pods the
//! namespace, pod and container names, read from the container runtime's own state on the
//! node (no API call, no socket to the runtime), once per container.
//!
//! * containerd: the OCI bundle of the running task,
//!   `/run/containerd/io.containerd.runtime.v2.task/<namespace>/<id>/config.json`; the CRI
//!   plugin's annotations (`io.kubernetes.cri.sandbox-namespace`, `…sandbox-name`,
//!   `…container-name`, `…image-name`) name the pod. Outside Kubernetes (`ctr run`) the
//!   bundle names nothing but the id.
//! * CRI-O: its bundle under `/run/containers/storage/overlay-containers/<id>/userdata/`,
//!   annotations `io.kubernetes.pod.namespace`, `io.kubernetes.pod.name`,
//!   `io.kubernetes.container.name` (or the same keys in `io.kubernetes.cri-o.Labels`) and
//!   `io.kubernetes.cri-o.ImageName`; its name and image also in containers/storage.
//! * podman: containers/storage's `containers.json` (`names`, and `image-name` in its
//!   metadata) under the graph root, /var/lib/containers/storage unless storage.conf says
//!   otherwise.
//! * docker: `/var/lib/docker/containers/<id>/config.v2.json` (`Name`, `Config.Image`, and
//!   the `io.kubernetes.*` labels dockershim set).
//!
//! An agent in a container of its own (`--pid=host`) reads the node's files through
//! `/proc/PID/root` of a process on the node (`node_root`).
use std::{
    collections::{HashMap, VecDeque},
    fs,
    path::{Path, PathBuf},
};

use serde::Serialize;
use serde_json::Value;

/// What the runtime says of one container. Every field is `None` when it does not say.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ContainerInfo {
    pub container_name: Option<String>,
    pub container_image: Option<String>,
    pub k8s_namespace: Option<String>,
    pub k8s_pod: Option<String>,
    pub k8s_container: Option<String>,
}

impl ContainerInfo {
    pub fn is_empty(&self) -> bool {
        *self == ContainerInfo::default()
    }
}

/// Containers remembered (a node runs hundreds at most; ids of gone ones age out).
const CACHE_CAP: usize = 4096;

/// The runtimes' state directories, below `root` (the node's root as we see it).
pub struct Containers {
    root: PathBuf,
    cache: HashMap<String, ContainerInfo>,
    order: VecDeque<String>,
}

/// Where the node's files are: `/` on the node itself; in a container of our own whose PID
/// namespace is the host's (another mount namespace), the root of a process on the node:
/// init's, or — where init is out of reach (a sandbox's init in another user namespace) —
/// our parent's (conmon, containerd-shim: the runtime's monitor runs on the node).
fn node_root() -> PathBuf {
    let mnt = |pid: &str| fs::read_link(format!("/proc/{pid}/ns/mnt")).ok();
    let ours = mnt("self");
    let parent = std::os::unix::process::parent_id().to_string();
    for pid in ["1", parent.as_str()] {
        match mnt(pid) {
            Some(theirs) if Some(&theirs) != ours.as_ref() => {
                return PathBuf::from(format!("/proc/{pid}/root"));
            }
            Some(_) => return PathBuf::from("/"),
            None => {}
        }
    }
    PathBuf::from("/")
}

impl Containers {
    pub fn new() -> Containers {
        Containers::at(node_root())
    }

    /// With the node's root at `root` (tests lay out fixtures there).
    pub fn at(root: PathBuf) -> Containers {
        Containers {
            root,
            cache: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The container `id` of `runtime` (as `identity::container_of` named them).
    pub fn of(&mut self, runtime: &str, id: &str) -> ContainerInfo {
        if let Some(c) = self.cache.get(id) {
            return c.clone();
        }
        let info = self.read(runtime, id);
        // Not cached while the runtime's state says nothing yet: it may be written later.
        if !info.is_empty() {
            self.cache.insert(id.to_owned(), info.clone());
            self.order.push_back(id.to_owned());
            while self.order.len() > CACHE_CAP {
                if let Some(old) = self.order.pop_front() {
                    self.cache.remove(&old);
                }
            }
        }
        info
    }

    fn path(&self, p: &str) -> PathBuf {
        self.root.join(p.trim_start_matches('/'))
    }

    fn read(&self, runtime: &str, id: &str) -> ContainerInfo {
        match runtime {
            "containerd" => self.containerd(id),
            "cri-o" => self.crio(id),
            "podman" => self.storage(id),
            "docker" => self.docker(id),
            // The cgroupfs layout of kubepods names no runtime: ask both CRI runtimes.
            "kubernetes" => {
                let c = self.containerd(id);
                if c.is_empty() { self.crio(id) } else { c }
            }
            _ => ContainerInfo::default(),
        }
    }

    /// containerd's bundle of task `id`, in whichever containerd namespace has it.
    fn containerd(&self, id: &str) -> ContainerInfo {
        let tasks = self.path("/run/containerd/io.containerd.runtime.v2.task");
        let Ok(namespaces) = fs::read_dir(&tasks) else {
            return ContainerInfo::default();
        };
        for ns in namespaces.flatten() {
            let config = ns.path().join(id).join("config.json");
            if let Some(spec) = read_json(&config) {
                let a = &spec["annotations"];
                let get = |k: &str| a[k].as_str().filter(|s| !s.is_empty()).map(str::to_owned);
                let sandbox = get("io.kubernetes.cri.container-type").as_deref() == Some("sandbox");
                let k8s_container = get("io.kubernetes.cri.container-name");
                return ContainerInfo {
                    container_name: k8s_container.clone(),
                    container_image: if sandbox {
                        get("io.kubernetes.cri.podsandbox.image-name")
                    } else {
                        get("io.kubernetes.cri.image-name")
                    },
                    k8s_namespace: get("io.kubernetes.cri.sandbox-namespace"),
                    k8s_pod: get("io.kubernetes.cri.sandbox-name"),
                    k8s_container,
                };
            }
        }
        ContainerInfo::default()
    }

    /// CRI-O: the bundle's annotations, completed from containers/storage.
    fn crio(&self, id: &str) -> ContainerInfo {
        let mut info = self.storage(id);
        let userdata = format!("overlay-containers/{id}/userdata/config.json");
        let bundle = [
            self.path(&format!("/run/containers/storage/{userdata}")),
            self.graph_root().join(&userdata),
        ]
        .iter()
        .find_map(|p| read_json(p));
        let Some(spec) = bundle else { return info };
        let a = &spec["annotations"];
        let labels: Value = a["io.kubernetes.cri-o.Labels"]
            .as_str()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or(Value::Null);
        let get = |k: &str| {
            a[k].as_str()
                .or_else(|| labels[k].as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        info.k8s_namespace = get("io.kubernetes.pod.namespace");
        info.k8s_pod = get("io.kubernetes.pod.name");
        info.k8s_container = get("io.kubernetes.container.name");
        if let Some(image) = get("io.kubernetes.cri-o.ImageName") {
            info.container_image = Some(image);
        }
        if info.k8s_container.is_some() {
            info.container_name = info.k8s_container.clone();
        }
        info
    }

    /// containers/storage's graph root: storage.conf's `graphroot`, else the default.
    fn graph_root(&self) -> PathBuf {
        let conf =
            fs::read_to_string(self.path("/etc/containers/storage.conf")).unwrap_or_default();
        let configured = conf.lines().find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == "graphroot").then(|| v.trim().trim_matches('"').to_owned())
        });
        self.path(
            configured
                .as_deref()
                .unwrap_or("/var/lib/containers/storage"),
        )
    }

    /// podman (and CRI-O) containers in containers/storage: `<driver>-containers/containers.json`.
    fn storage(&self, id: &str) -> ContainerInfo {
        let root = self.graph_root();
        let Ok(dirs) = fs::read_dir(&root) else {
            return ContainerInfo::default();
        };
        for d in dirs.flatten() {
            if !d.file_name().to_string_lossy().ends_with("-containers") {
                continue;
            }
            let Some(Value::Array(list)) = read_json(&d.path().join("containers.json")) else {
                continue;
            };
            if let Some(c) = list.iter().find(|c| c["id"] == id) {
                let meta: Value = c["metadata"]
                    .as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null);
                return ContainerInfo {
                    container_name: c["names"][0]
                        .as_str()
                        .or_else(|| meta["name"].as_str())
                        .map(str::to_owned),
                    container_image: meta["image-name"].as_str().map(str::to_owned),
                    ..ContainerInfo::default()
                };
            }
        }
        ContainerInfo::default()
    }

    fn docker(&self, id: &str) -> ContainerInfo {
        let path = self.path(&format!("/var/lib/docker/containers/{id}/config.v2.json"));
        let Some(c) = read_json(&path) else {
            return ContainerInfo::default();
        };
        let labels = &c["Config"]["Labels"];
        let label = |k: &str| labels[k].as_str().map(str::to_owned);
        ContainerInfo {
            container_name: c["Name"]
                .as_str()
                .map(|n| n.trim_start_matches('/').to_owned()),
            container_image: c["Config"]["Image"].as_str().map(str::to_owned),
            k8s_namespace: label("io.kubernetes.pod.namespace"),
            k8s_pod: label("io.kubernetes.pod.name"),
            k8s_container: label("io.kubernetes.container.name"),
        }
    }
}

/// A JSON file of the runtime's; `None` when absent or unparsable (half-written state is
/// read again at the next event, as nothing is cached for it).
fn read_json(path: &Path) -> Option<Value> {
    let text = fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node's state as the runtimes write it (lsn-trace/testdata/node): containerd's CRI
    /// bundles of a pod's sandbox and container, a CRI-O container, podman's and docker's.
    fn node() -> Containers {
        Containers::at(Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/node"))
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_owned())
    }

    #[test]
    fn containerd_cri_container_and_sandbox() {
        let mut n = node();
        let id = "3f1c0e8b2a4d5c6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6";
        let want = ContainerInfo {
            container_name: some("nginx"),
            container_image: some("registry.example.com/shop/nginx:1.27"),
            k8s_namespace: some("shop"),
            k8s_pod: some("web-7d9f8c6b5-x2k4p"),
            k8s_container: some("nginx"),
        };
        assert_eq!(n.of("containerd", id), want);
        // The cgroupfs layout names no runtime: the same bundle is found.
        assert_eq!(node().of("kubernetes", id), want);
        let sandbox = "9a8b7c6d5e4f30211f2e3d4c5b6a79880a1b2c3d4e5f60718293a4b5c6d7e8f9";
        assert_eq!(
            n.of("containerd", sandbox),
            ContainerInfo {
                container_name: None,
                container_image: some("registry.k8s.io/pause:3.10"),
                k8s_namespace: some("shop"),
                k8s_pod: some("web-7d9f8c6b5-x2k4p"),
                k8s_container: None,
            }
        );
        assert!(n.of("containerd", &"0".repeat(64)).is_empty());
    }

    #[test]
    fn crio_podman_docker() {
        let mut n = node();
        let crio = "5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d";
        let want = ContainerInfo {
            container_name: some("api"),
            container_image: some("quay.example.com/billing/api:2.3.1"),
            k8s_namespace: some("billing"),
            k8s_pod: some("api-5b8c9d-q7w2e"),
            k8s_container: some("api"),
        };
        assert_eq!(n.of("cri-o", crio), want);
        assert_eq!(node().of("kubernetes", crio), want);
        let podman = "28e50a2b3ebd10e40240d1da9ef483d01f74d71154ddb553b0da78a26fc0b168";
        assert_eq!(
            n.of("podman", podman),
            ContainerInfo {
                container_name: some("fleet-probe"),
                container_image: some("localhost/fleet-bb:test"),
                ..ContainerInfo::default()
            }
        );
        let docker = "b1c2d3e4f5a60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
        assert_eq!(
            n.of("docker", docker),
            ContainerInfo {
                container_name: some("redis-cache"),
                container_image: some("redis:7.2"),
                ..ContainerInfo::default()
            }
        );
        assert!(n.of("podman", &"1".repeat(64)).is_empty());
        assert!(n.of("docker", &"1".repeat(64)).is_empty());
    }

    #[test]
    fn cached_per_container_unknown_read_again() {
        let dir = std::env::temp_dir().join(format!("lsn-containers-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let store = dir.join("var/lib/containers/storage/overlay-containers");
        fs::create_dir_all(&store).unwrap();
        let id = "a".repeat(64);
        let mut n = Containers::at(dir.clone());
        assert!(n.of("podman", &id).is_empty(), "not written yet");
        let write = |name: &str| {
            let list = serde_json::json!([{ "id": id, "names": [name], "metadata": "{}" }]);
            fs::write(store.join("containers.json"), list.to_string()).unwrap();
        };
        write("first");
        assert_eq!(n.of("podman", &id).container_name, some("first"));
        write("renamed");
        assert_eq!(n.of("podman", &id).container_name, some("first"), "cached");
        let _ = fs::remove_dir_all(&dir);
    }
}
