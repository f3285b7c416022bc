//! The CDI (Container Device Interface) spec the package installs as
//! `/etc/cdi/daxguard.json`: a container runtime that reads CDI specs
//! (podman, containerd and CRI-O with CDI on, Docker 25+ with the `cdi`
//! feature) applies its edits when asked for one of its devices, e.g.
//! `podman run --device daxguard.io/preload=enabled ...`.
//!
//! A "device" here is no device node: it is the preload. Each one
//! bind-mounts the host's libdaxguard.so read-only at the same path in the
//! container and sets `LD_PRELOAD` to it; all but `enabled` also set
//! `DAXGUARD_MODE`. Every device carries its whole edit (CDI refuses a
//! device without edits of its own), so ask for one of them per container.
//!
//! `cdiVersion` is 0.3.0, the earliest the reference implementation still
//! reads: nothing here needs a later one (no mount `type`, no annotations,
//! no dots in the class), and older runtimes (Debian 12's podman 4.3)
//! read it too.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::shim::private_dir;

/// The kind: vendor `daxguard.io`, class `preload`.
pub const KIND: &str = "daxguard.io/preload";

/// The devices: `enabled` keeps the library's own default mode, the others
/// name theirs.
pub const DEVICES: [(&str, Option<&str>); 5] = [
    ("enabled", None),
    ("enforce", Some("enforce")),
    ("warn", Some("warn")),
    ("audit", Some("audit")),
    ("odp", Some("odp")),
];

/// The spec's fields, in the order the CDI specification lists them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    pub cdi_version: &'static str,
    pub kind: &'static str,
    pub devices: Vec<Device>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Device {
    pub name: &'static str,
    pub container_edits: Edits,
}

#[derive(Serialize)]
pub struct Edits {
    pub env: Vec<String>,
    pub mounts: Vec<Mount>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    pub options: [&'static str; 4],
}

/// The library as the spec names it, on the host and in the container.
pub fn library(prefix: &Path) -> PathBuf {
    prefix.join(private_dir()).join("libdaxguard.so")
}

/// The spec, for the library under `prefix` (`/usr` for the package).
pub fn spec(prefix: &Path) -> Spec {
    let lib = library(prefix).display().to_string();
    let devices = DEVICES
        .iter()
        .map(|&(name, mode)| {
            let mut env = vec![format!("LD_PRELOAD={lib}")];
            env.extend(mode.map(|m| format!("DAXGUARD_MODE={m}")));
            let mount = Mount {
                host_path: lib.clone(),
                container_path: lib.clone(),
                options: ["ro", "nosuid", "nodev", "bind"],
            };
            Device { name, container_edits: Edits { env, mounts: vec![mount] } }
        })
        .collect();
    Spec { cdi_version: "0.3.0", kind: KIND, devices }
}

/// The spec as the file holds it: pretty-printed JSON, with a final newline.
pub fn text(prefix: &Path) -> String {
    let mut s = serde_json::to_string_pretty(&spec(prefix)).expect("the spec serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shim::MULTIARCH;

    use serde_json::{Value, json};

    fn value(prefix: &str) -> Value {
        serde_json::from_str(&text(Path::new(prefix))).unwrap()
    }

    #[test]
    fn every_device_mounts_the_library_and_preloads_it() {
        let s = value("/usr");
        let lib = format!("/usr/lib/{MULTIARCH}/daxguard/libdaxguard.so");
        assert_eq!(s["kind"], KIND);
        let devices = s["devices"].as_array().unwrap();
        assert_eq!(devices.len(), DEVICES.len());
        for d in devices {
            let edits = &d["containerEdits"];
            let mut keys: Vec<&String> = edits.as_object().unwrap().keys().collect();
            keys.sort();
            assert_eq!(keys, ["env", "mounts"], "{d}");
            assert_eq!(edits["env"][0], format!("LD_PRELOAD={lib}"));
            let m = &edits["mounts"][0];
            assert_eq!((m["hostPath"].as_str(), m["containerPath"].as_str()), (Some(&*lib), Some(&*lib)));
            assert!(m["options"].as_array().unwrap().contains(&json!("ro")));
        }
        assert_eq!(devices[2]["name"], "warn");
        assert_eq!(devices[2]["containerEdits"]["env"][1], "DAXGUARD_MODE=warn");
        assert_eq!(devices[0]["containerEdits"]["env"].as_array().unwrap().len(), 1, "enabled sets no mode");
        let opt = value("/opt/dg");
        assert_eq!(
            opt["devices"][0]["containerEdits"]["mounts"][0]["hostPath"],
            format!("/opt/dg/lib/{MULTIARCH}/daxguard/libdaxguard.so")
        );
    }

    /// What CDI checks of a spec (tags.cncf.io/container-device-interface:
    /// pkg/parser and pkg/cdi): the kind is `vendor/class` with a DNS
    /// subdomain as vendor, device names are alphanumerics with `-_.`
    /// inside, every env entry is `NAME=value`, and every mode is one the
    /// library reads.
    #[test]
    fn what_cdi_validates() {
        let (vendor, class) = KIND.split_once('/').unwrap();
        assert!(vendor.split('.').all(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')));
        assert!(class.chars().all(|c| c.is_ascii_alphanumeric() || "-_".contains(c)));
        for (name, mode) in DEVICES {
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric()), "{name}");
            if let Some(m) = mode {
                assert!(daxguard::policy::Mode::parse(m).is_some(), "{m}");
            }
        }
        for e in text(Path::new("/usr")).lines().filter(|l| l.contains("LD_PRELOAD") || l.contains("DAXGUARD_MODE")) {
            let v = e.trim().trim_end_matches(',').trim_matches('"');
            assert!(v.find('=').is_some_and(|i| i > 0), "{v}");
        }
    }
}
