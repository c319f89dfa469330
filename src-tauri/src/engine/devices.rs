//! Cameras, microphones and speakers as the UI lists them (`DeviceList` in
//! `ui/src/engine/engine.ts`).
//!
//! Capture lives in `shared/media` (not on this branch yet): until it lands the
//! shell reports no devices, which the UI shows as "No camera found" / "No
//! microphone found" while chat, screens and signaling keep working. Swap
//! [`Devices::enumerate`] for `shared/media`'s enumeration then.

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

/// The devices of this machine and the user's choice.
#[derive(Debug, Default)]
pub struct Devices {
    selected: Selected,
}

impl Devices {
    /// Every device found now (none until `shared/media` is merged).
    pub fn enumerate(&self) -> DeviceList {
        DeviceList { selected: self.selected.clone(), ..DeviceList::default() }
    }

    pub fn has(&self, kind: DeviceKind) -> bool {
        let list = self.enumerate();
        match kind {
            DeviceKind::Camera => !list.cameras.is_empty(),
            DeviceKind::Microphone => !list.microphones.is_empty(),
            DeviceKind::Speaker => !list.speakers.is_empty(),
        }
    }

    pub fn select(&mut self, kind: DeviceKind, id: &str) -> Result<()> {
        let list = self.enumerate();
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

    #[test]
    fn no_devices_until_media_lands() {
        let mut d = Devices::default();
        let v = serde_json::to_value(d.enumerate()).unwrap();
        assert_eq!(v["cameras"], serde_json::json!([]));
        assert!(v["selected"]["camera"].is_null() && v["selected"]["speaker"].is_null());
        assert!(!d.has(DeviceKind::Camera));
        assert_eq!(d.select(DeviceKind::Camera, "cam-0").unwrap_err().code, "no_device");
        assert!(parse_kind("webcam").is_err());
    }
}
