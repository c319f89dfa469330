//! A scheduled meeting as an iCalendar invitation (RFC 5545): one `VEVENT`
//! in a `VCALENDAR`, times in UTC, the invite link as `URL` and in the
//! description. Pure functions, no I/O.
//!
//! The invitation carries the title and the link, never the patient
//! reference or the meeting's description (it is meant to be mailed).

use clinicmeet_protocol::{MeetingInfo, UnixMillis};

/// Planned duration when the caller gives none, in minutes.
pub const DEFAULT_DURATION_MINS: u32 = 30;

/// The `clinicmeet://join/…` link of a meeting: its invite secret (or access
/// code) and, when known, the relay and its key pin (the form the desktop app
/// opens, `src-tauri/src/launch.rs`).
pub fn invite_link(secret: &str, relay: Option<(&str, &str)>) -> String {
    let mut link = format!("clinicmeet://join/{}", percent_encode(secret));
    if let Some((address, pin)) = relay {
        link.push_str(&format!("?relay={}&pin={}", percent_encode(address), percent_encode(pin)));
    }
    link
}

/// The invitation of a meeting that starts at `start` (UTC milliseconds) and
/// lasts `duration_mins`, stamped `now`. Lines end in CRLF and are folded at
/// 75 octets (never inside a UTF-8 character).
pub fn invitation(
    meeting: &MeetingInfo,
    start: UnixMillis,
    duration_mins: u32,
    link: &str,
    now: UnixMillis,
) -> String {
    let description = format!("Join the video meeting: {link}");
    let lines = [
        "BEGIN:VCALENDAR".to_string(),
        "VERSION:2.0".into(),
        "PRODID:-//ClinicMeet//ClinicMeet//EN".into(),
        "CALSCALE:GREGORIAN".into(),
        "METHOD:PUBLISH".into(),
        "BEGIN:VEVENT".into(),
        format!("UID:{}@clinicmeet", meeting.id),
        format!("DTSTAMP:{}", utc_stamp(now)),
        format!("DTSTART:{}", utc_stamp(start)),
        format!("DURATION:PT{}M", duration_mins.max(1)),
        format!("SUMMARY:{}", escape_text(&meeting.title)),
        format!("DESCRIPTION:{}", escape_text(&description)),
        format!("URL:{link}"),
        "END:VEVENT".into(),
        "END:VCALENDAR".into(),
    ];
    lines.iter().map(String::as_str).map(fold).collect()
}

/// `YYYYMMDDTHHMMSSZ` of a UTC time (milliseconds dropped).
pub fn utc_stamp(ms: UnixMillis) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// TEXT escaping (RFC 5545 3.3.11): backslash, semicolon, comma, newline;
/// other control characters are dropped.
pub fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// One content line, folded (RFC 5545 3.1): at most 75 octets per line, each
/// continuation starting with a space; CRLF after each.
fn fold(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3 + 2);
    let mut used = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if used + n > 75 {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += n;
    }
    out.push_str("\r\n");
    out
}

/// Percent-encodes all but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clinicmeet_protocol::{MeetingKind, MeetingSettings, MeetingStatus};
    use uuid::Uuid;

    fn meeting(title: &str) -> MeetingInfo {
        MeetingInfo {
            id: Uuid::from_u128(0x1234),
            title: title.into(),
            description: Some("private description".into()),
            kind: MeetingKind::Consultation,
            status: MeetingStatus::Scheduled,
            host_name: "Dr B".into(),
            locked: false,
            settings: MeetingSettings::default(),
            patient_reference: Some("P-4711".into()),
            schedule: None,
            created_at: 0,
            started_at: None,
            ended_at: None,
        }
    }

    /// Unfolds content lines (RFC 5545 3.1) back into logical lines.
    fn unfold(ics: &str) -> Vec<String> {
        ics.replace("\r\n ", "").split("\r\n").filter(|l| !l.is_empty()).map(str::to_string).collect()
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // 2026-12-07T22:37:20Z
        assert_eq!(utc_stamp(1_796_683_040_000), "20261207T223720Z");
        // A leap day and the end of a century leap year.
        assert_eq!(utc_stamp(951_782_400_000), "20000229T000000Z");
        assert_eq!(utc_stamp(978_307_199_999), "20001231T235959Z");
        assert_eq!(utc_stamp(-1_000), "19691231T235959Z");
    }

    #[test]
    fn an_invitation_has_the_event_fields_and_no_patient_data() {
        let link =
            invite_link("ABCDEFGHJKMNPQRSTVWXYZ2345", Some(("relay.clinic.example:4433", "sha256/a+b/c=")));
        assert_eq!(
            link,
            "clinicmeet://join/ABCDEFGHJKMNPQRSTVWXYZ2345?relay=relay.clinic.example%3A4433&pin=sha256%2Fa%2Bb%2Fc%3D"
        );
        let ics = invitation(&meeting("Knee; follow-up, part 2\\3"), 1_796_683_040_000, 45, &link, 1_000);
        assert!(ics.ends_with("\r\n") && !ics.replace("\r\n", "").contains('\n'), "CRLF only");
        let lines = unfold(&ics);
        assert_eq!(lines.first().unwrap(), "BEGIN:VCALENDAR");
        assert_eq!(lines.last().unwrap(), "END:VCALENDAR");
        for want in [
            "VERSION:2.0",
            "BEGIN:VEVENT",
            "UID:00000000-0000-0000-0000-000000001234@clinicmeet",
            "DTSTAMP:19700101T000001Z",
            "DTSTART:20261207T223720Z",
            "DURATION:PT45M",
            "SUMMARY:Knee\\; follow-up\\, part 2\\\\3",
            &format!("URL:{link}"),
            "END:VEVENT",
        ] {
            assert!(lines.iter().any(|l| l == want), "{want} missing from {lines:#?}");
        }
        let description = lines.iter().find(|l| l.starts_with("DESCRIPTION:")).unwrap();
        assert!(description.contains("clinicmeet://join/ABCDEFGHJKMNPQRSTVWXYZ2345"));
        assert!(!ics.contains("P-4711") && !ics.contains("private description"));
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let title = "Kontrolle — Ünterschenkel ".repeat(10) + &"漢字".repeat(30);
        let ics = invitation(&meeting(&title), 0, 0, "clinicmeet://join/X", 0);
        for raw in ics.split("\r\n") {
            assert!(raw.len() <= 75, "{} octets: {raw}", raw.len());
        }
        let summary = unfold(&ics).into_iter().find(|l| l.starts_with("SUMMARY:")).unwrap();
        assert_eq!(summary, format!("SUMMARY:{title}"));
        assert!(ics.contains("DURATION:PT1M"), "a zero duration becomes one minute");
        // Control characters are dropped, newlines escaped.
        assert_eq!(escape_text("a\u{7}b\nc"), "ab\\nc");
    }
}
