//! Cameras, microphones and speakers as the UI lists them (`DeviceList` in
//! `ui/src/engine/engine.ts`).
//!
//! Enumeration is `shared/media`'s (nokhwa cameras, cpal microphones and
//! speakers). None found: empty lists, which the UI shows as "No camera found" /
//! "No microphone found" while chat, screens and signaling keep working. With
//! `CLINICMEET_SYNTHETIC_DEVICES=1` a test pattern / test tone stands in.

use clinicmeet_media::capture::DeviceInfo as MediaDevice;
use serde::Serialize;

use crate::error::{AppError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Camera,
    Microphone,
    Speaker,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceInfo {
    pub id: String,
    pub label: String,
    pub kind: DeviceKind,
    pub is_default: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Selected {
    pub camera: Option<String>,
    pub microphone: Option<String>,
    pub speaker: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceList {
    pub cameras: Vec<DeviceInfo>,
    pub microphones: Vec<DeviceInfo>,
    pub speakers: Vec<DeviceInfo>,
    pub selected: Selected,
}

/// Id of the synthetic camera / microphone (test pattern, test tone).
pub const SYNTHETIC_ID: &str = "synthetic";

/// Whether the synthetic test pattern and tone stand in when this machine has no
/// camera or microphone (`CLINICMEET_SYNTHETIC_DEVICES=1`; demos, measurements).
/// Off by default: a clinic app must not send a test pattern to a patient.
pub fn synthetic_enabled() -> bool {
    std::env::var("CLINICMEET_SYNTHETIC_DEVICES").map(|v| v == "1" || v == "true").unwrap_or(false)
}

fn infos(list: clinicmeet_media::error::Result<Vec<MediaDevice>>, kind: DeviceKind) -> Vec<DeviceInfo> {
    let list = list.unwrap_or_else(|e| {
        tracing::info!(kind = kind_name(kind), error = %e, "no devices");
        Vec::new()
    });
    list.into_iter()
        .enumerate()
        .map(|(i, d)| DeviceInfo { id: d.id, label: d.name, kind, is_default: i == 0 })
        .collect()
}

fn synthetic(kind: DeviceKind, label: &str) -> DeviceInfo {
    DeviceInfo { id: SYNTHETIC_ID.into(), label: label.into(), kind, is_default: true }
}

/// Real enumeration through `shared/media` (nokhwa for cameras, cpal for audio).
pub fn scan(with_synthetic: bool) -> DeviceList {
    use clinicmeet_media::capture::{audio_device, camera};
    let mut list = DeviceList {
        cameras: infos(camera::list_cameras(), DeviceKind::Camera),
        microphones: infos(audio_device::list_microphones(), DeviceKind::Microphone),
        speakers: infos(audio_device::list_speakers(), DeviceKind::Speaker),
        selected: Selected::default(),
    };
    if with_synthetic {
        if list.cameras.is_empty() {
            list.cameras.push(synthetic(DeviceKind::Camera, "Test pattern (no camera found)"));
        }
        if list.microphones.is_empty() {
            list.microphones.push(synthetic(DeviceKind::Microphone, "Test tone (no microphone found)"));
        }
    }
    list
}

/// The devices of this machine (scanned on demand) and the user's choice.
#[derive(Debug, Default)]
pub struct Devices {
    found: Option<DeviceList>,
    selected: Selected,
}

impl Devices {
    /// Devices scanned now (a fresh scan each call: devices come and go).
    pub fn enumerate(&mut self) -> DeviceList {
        self.set_found(scan(synthetic_enabled()))
    }

    /// Uses `list` as the devices found (tests; `enumerate` after a scan).
    pub fn set_found(&mut self, mut list: DeviceList) -> DeviceList {
        // Keep a selection that still exists, else the default of each kind.
        let pick = |pool: &[DeviceInfo], cur: &Option<String>| {
            cur.clone()
                .filter(|c| pool.iter().any(|d| &d.id == c))
                .or_else(|| pool.iter().find(|d| d.is_default).or(pool.first()).map(|d| d.id.clone()))
        };
        self.selected = Selected {
            camera: pick(list.cameras.as_slice(), &self.selected.camera),
            microphone: pick(list.microphones.as_slice(), &self.selected.microphone),
            speaker: pick(list.speakers.as_slice(), &self.selected.speaker),
        };
        list.selected = self.selected.clone();
        self.found = Some(list.clone());
        list
    }

    fn found(&mut self) -> DeviceList {
        match &self.found {
            Some(l) => l.clone(),
            None => self.enumerate(),
        }
    }

    /// The chosen device of a kind (scans once if nothing was scanned yet).
    pub fn chosen(&mut self, kind: DeviceKind) -> Option<String> {
        let _ = self.found();
        match kind {
            DeviceKind::Camera => self.selected.camera.clone(),
            DeviceKind::Microphone => self.selected.microphone.clone(),
            DeviceKind::Speaker => self.selected.speaker.clone(),
        }
    }

    pub fn has(&mut self, kind: DeviceKind) -> bool {
        self.chosen(kind).is_some()
    }

    pub fn select(&mut self, kind: DeviceKind, id: &str) -> Result<()> {
        let list = self.found();
        let pool = match kind {
            DeviceKind::Camera => &list.cameras,
            DeviceKind::Microphone => &list.microphones,
            DeviceKind::Speaker => &list.speakers,
        };
        if !pool.iter().any(|d| d.id == id) {
            return Err(AppError::no_device(format!("No such {} on this computer.", kind_name(kind))));
        }
        let slot = match kind {
            DeviceKind::Camera => &mut self.selected.camera,
            DeviceKind::Microphone => &mut self.selected.microphone,
            DeviceKind::Speaker => &mut self.selected.speaker,
        };
        *slot = Some(id.to_string());
        Ok(())
    }
}

pub fn kind_name(kind: DeviceKind) -> &'static str {
    match kind {
        DeviceKind::Camera => "camera",
        DeviceKind::Microphone => "microphone",
        DeviceKind::Speaker => "speaker",
    }
}

pub fn parse_kind(s: &str) -> Result<DeviceKind> {
    match s {
        "camera" => Ok(DeviceKind::Camera),
        "microphone" => Ok(DeviceKind::Microphone),
        "speaker" => Ok(DeviceKind::Speaker),
        other => Err(AppError::invalid_input(format!(
            "unknown device kind `{}`",
            other.chars().take(20).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(id: &str, kind: DeviceKind, is_default: bool) -> DeviceInfo {
        DeviceInfo { id: id.into(), label: id.into(), kind, is_default }
    }

    #[test]
    fn no_devices_means_empty_lists_and_nothing_selected() {
        let mut d = Devices::default();
        let v = serde_json::to_value(d.set_found(DeviceList::default())).unwrap();
        assert_eq!(v["cameras"], serde_json::json!([]));
        assert!(v["selected"]["camera"].is_null() && v["selected"]["speaker"].is_null());
        assert!(!d.has(DeviceKind::Camera));
        assert_eq!(d.select(DeviceKind::Camera, "cam-0").unwrap_err().code, "no_device");
        assert!(parse_kind("webcam").is_err());
    }

    #[test]
    fn default_is_selected_and_choice_is_kept() {
        let mut d = Devices::default();
        let list = DeviceList {
            cameras: vec![dev("a", DeviceKind::Camera, false), dev("b", DeviceKind::Camera, true)],
            ..DeviceList::default()
        };
        assert_eq!(d.set_found(list.clone()).selected.camera.as_deref(), Some("b"));
        d.select(DeviceKind::Camera, "a").unwrap();
        assert_eq!(d.set_found(list).selected.camera.as_deref(), Some("a"));
        assert_eq!(d.chosen(DeviceKind::Microphone), None);
    }

    #[test]
    fn this_machine_scans_without_failing() {
        // These machines have no camera or sound card: real enumeration says so with
        // empty lists (not an error), and the synthetic stand-ins appear only when asked.
        let real = scan(false);
        assert!(real.cameras.iter().all(|c| c.id != SYNTHETIC_ID));
        let with = scan(true);
        assert!(!with.cameras.is_empty() && !with.microphones.is_empty());
    }
}
