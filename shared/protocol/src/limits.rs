//! Sizes and lengths that both ends enforce, and the validation of user text.

use crate::error::{ErrorBody, ErrorCode};

/// Largest control frame (after the 4-byte length prefix) either side accepts.
pub const MAX_FRAME_LEN: usize = 256 * 1024;
/// Largest chat message text, in bytes of UTF-8.
pub const MAX_CHAT_TEXT_BYTES: usize = 8 * 1024;
/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 64;
/// Longest meeting title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest meeting description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// Longest patient reference, in characters.
pub const MAX_PATIENT_REFERENCE_CHARS: usize = 100;
/// Most attachments in one chat message.
pub const MAX_ATTACHMENTS_PER_MESSAGE: usize = 10;
/// Most chat messages returned in one history page.
pub const MAX_HISTORY_PAGE: u32 = 500;
/// Largest consultation notes, and largest amendment, in bytes of UTF-8.
pub const MAX_NOTES_BYTES: usize = 20 * 1024;
/// Most amendments one consultation record takes.
pub const MAX_AMENDMENTS: u32 = 100;
/// Most past meetings returned in one list.
pub const MAX_PAST_PAGE: u32 = 200;
/// Longest past-meeting search text, in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// Default and largest participant limit of a meeting.
pub const DEFAULT_MAX_PARTICIPANTS: u32 = 50;
pub const MAX_MAX_PARTICIPANTS: u32 = 500;

/// Trims and checks a piece of user text: not empty (when `required`), not too
/// long, no control characters other than newlines/tabs (where `multiline`).
pub fn clean_text(
    field: &str,
    value: &str,
    max_chars: usize,
    required: bool,
    multiline: bool,
) -> Result<String, ErrorBody> {
    let v = value.trim();
    if required && v.is_empty() {
        return Err(ErrorBody::new(ErrorCode::Malformed, format!("{field} must not be empty")));
    }
    if v.chars().count() > max_chars {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            format!("{field} is longer than {max_chars} characters"),
        ));
    }
    let bad = v.chars().any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')));
    if bad {
        return Err(ErrorBody::new(ErrorCode::Malformed, format!("{field} contains control characters")));
    }
    Ok(v.to_string())
}

/// Checks chat text: 1..=[`MAX_CHAT_TEXT_BYTES`] bytes, newlines allowed.
pub fn clean_chat_text(text: &str) -> Result<String, ErrorBody> {
    if text.len() > MAX_CHAT_TEXT_BYTES {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            format!("chat messages are limited to {MAX_CHAT_TEXT_BYTES} bytes"),
        ));
    }
    clean_text("message", text, usize::MAX, true, true)
}

/// Checks consultation notes or an amendment: 1..=[`MAX_NOTES_BYTES`] bytes, newlines allowed.
pub fn clean_notes(field: &str, text: &str) -> Result<String, ErrorBody> {
    if text.len() > MAX_NOTES_BYTES {
        return Err(ErrorBody::new(
            ErrorCode::TooLarge,
            format!("{field} are limited to {MAX_NOTES_BYTES} bytes"),
        ));
    }
    clean_text(field, text, usize::MAX, true, true)
}

/// Checks a display name.
pub fn clean_display_name(name: &str) -> Result<String, ErrorBody> {
    clean_text("display name", name, MAX_DISPLAY_NAME_CHARS, true, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names() {
        assert_eq!(clean_display_name("  Dr. Ada ").unwrap(), "Dr. Ada");
        assert_eq!(clean_display_name("   ").unwrap_err().code, ErrorCode::Malformed);
        assert_eq!(clean_display_name("a\u{7}b").unwrap_err().code, ErrorCode::Malformed);
        assert_eq!(clean_display_name(&"x".repeat(65)).unwrap_err().code, ErrorCode::TooLarge);
    }

    #[test]
    fn chat_text() {
        assert_eq!(clean_chat_text("line1\nline2").unwrap(), "line1\nline2");
        assert_eq!(clean_chat_text("").unwrap_err().code, ErrorCode::Malformed);
        assert_eq!(clean_chat_text(&"é".repeat(5000)).unwrap_err().code, ErrorCode::TooLarge);
    }
}
