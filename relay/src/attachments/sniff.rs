//! The type of a file, found from its content (never its name), against the
//! allow-list: PDF, JPEG, PNG, HEIC, WebP, plain text (UTF-8), Office Open XML
//! (docx, xlsx, pptx), OpenDocument text (odt) and legacy Word (doc, OLE2).
//! Executables (ELF, PE, Mach-O, scripts with `#!`) are refused by name before
//! anything else is looked at, so a PE renamed `.pdf` stays a PE.

use std::io::{Read, Seek, SeekFrom};

/// Why a file was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Executable,
    NotAllowed,
}

const HEAD: usize = 4096;
/// Largest zip central directory read to find the entries' names.
const MAX_CENTRAL_DIR: u64 = 1024 * 1024;

/// The MIME type of `f` (`len` bytes), or why it is refused.
pub fn sniff<F: Read + Seek>(f: &mut F, len: u64) -> std::io::Result<Result<&'static str, Refused>> {
    let mut head = vec![0u8; HEAD.min(len as usize)];
    f.seek(SeekFrom::Start(0))?;
    f.read_exact(&mut head)?;
    if is_executable(&head) {
        return Ok(Err(Refused::Executable));
    }
    let starts = |m: &[u8]| head.starts_with(m);
    let mime = if starts(b"%PDF-") {
        "application/pdf"
    } else if starts(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if starts(b"RIFF") && head.get(8..12) == Some(b"WEBP") {
        "image/webp"
    } else if head.get(4..8) == Some(b"ftyp")
        && head.get(8..12).is_some_and(|b| {
            [b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1"].iter().any(|x| b == *x)
        })
    {
        "image/heic"
    } else if starts(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        "application/msword"
    } else if starts(b"PK\x03\x04") {
        match zip_kind(f, len, &head)? {
            Some(m) => m,
            None => return Ok(Err(Refused::NotAllowed)),
        }
    } else if is_text(f)? {
        "text/plain; charset=utf-8"
    } else {
        return Ok(Err(Refused::NotAllowed));
    };
    Ok(Ok(mime))
}

fn is_executable(head: &[u8]) -> bool {
    const MAGIC: [&[u8]; 8] = [
        b"\x7fELF",
        b"MZ",
        b"#!",
        &[0xFE, 0xED, 0xFA, 0xCE],
        &[0xFE, 0xED, 0xFA, 0xCF],
        &[0xCE, 0xFA, 0xED, 0xFE],
        &[0xCF, 0xFA, 0xED, 0xFE],
        &[0xCA, 0xFE, 0xBA, 0xBE],
    ];
    MAGIC.iter().any(|m| head.starts_with(m))
}

/// UTF-8 throughout, no NUL, no control characters other than tab, newlines and form feed.
fn is_text<F: Read + Seek>(f: &mut F) -> std::io::Result<bool> {
    f.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry = 0usize;
    loop {
        let n = f.read(&mut buf[carry..])?;
        let end = carry + n;
        let chunk = &buf[..end];
        let valid = match std::str::from_utf8(chunk) {
            Ok(s) => s.len(),
            // An incomplete character at the end of a chunk (not of the file) continues in the next.
            Err(e) if e.error_len().is_none() && n > 0 => e.valid_up_to(),
            Err(_) => return Ok(false),
        };
        if chunk[..valid].iter().any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0C) || b == 0x7F)
        {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
        buf.copy_within(valid..end, 0);
        carry = end - valid;
    }
}

/// Office Open XML or OpenDocument text, from the zip's entry names.
fn zip_kind<F: Read + Seek>(f: &mut F, len: u64, head: &[u8]) -> std::io::Result<Option<&'static str>> {
    // OpenDocument: the first entry is `mimetype`, stored, holding the type.
    if head.get(30..38) == Some(b"mimetype") {
        let rest = head.get(38..).unwrap_or_default();
        return Ok(rest
            .starts_with(b"application/vnd.oasis.opendocument.text")
            .then_some("application/vnd.oasis.opendocument.text"));
    }
    let names = zip_names(f, len)?;
    let has = |n: &str| names.iter().any(|x| x == n);
    let under = |p: &str| names.iter().any(|x| x.starts_with(p));
    if !has("[Content_Types].xml") {
        return Ok(None);
    }
    Ok(if under("word/") {
        Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    } else if under("xl/") {
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    } else if under("ppt/") {
        Some("application/vnd.openxmlformats-officedocument.presentationml.presentation")
    } else {
        None
    })
}

/// The entry names of a zip's central directory (empty when it cannot be read).
fn zip_names<F: Read + Seek>(f: &mut F, len: u64) -> std::io::Result<Vec<String>> {
    let tail_len = len.min(22 + 65_535);
    let mut tail = vec![0u8; tail_len as usize];
    f.seek(SeekFrom::Start(len - tail_len))?;
    f.read_exact(&mut tail)?;
    let Some(eocd) = tail.windows(4).rposition(|w| w == b"PK\x05\x06") else { return Ok(Vec::new()) };
    let u32_at = |b: &[u8], i: usize| b.get(i..i + 4).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]));
    let u16_at = |b: &[u8], i: usize| b.get(i..i + 2).map(|x| u16::from_le_bytes([x[0], x[1]]) as usize);
    let (Some(size), Some(offset)) = (u32_at(&tail, eocd + 12), u32_at(&tail, eocd + 16)) else {
        return Ok(Vec::new());
    };
    let (size, offset) = (size as u64, offset as u64);
    if size > MAX_CENTRAL_DIR || offset.saturating_add(size) > len {
        return Ok(Vec::new());
    }
    let mut dir = vec![0u8; size as usize];
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(&mut dir)?;
    let mut names = Vec::new();
    let mut i = 0;
    while dir.get(i..i + 4) == Some(b"PK\x01\x02") {
        let (Some(n), Some(x), Some(c)) = (u16_at(&dir, i + 28), u16_at(&dir, i + 30), u16_at(&dir, i + 32))
        else {
            break;
        };
        let Some(name) = dir.get(i + 46..i + 46 + n) else { break };
        names.push(String::from_utf8_lossy(name).into_owned());
        i += 46 + n + x + c;
    }
    Ok(names)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn sniffed(b: &[u8]) -> Result<&'static str, Refused> {
        sniff(&mut std::io::Cursor::new(b), b.len() as u64).unwrap()
    }

    /// A minimal stored zip with these entries (local headers, central directory, end record).
    pub(crate) fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for (name, data) in entries {
            let at = out.len() as u32;
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(data);
            central.extend_from_slice(b"PK\x01\x02");
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(data.len() as u32).to_le_bytes());
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&at.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_at = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(b"PK\x05\x06\0\0\0\0");
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_at.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn allowed_types_are_found_from_content() {
        assert_eq!(sniffed(b"%PDF-1.7\n..."), Ok("application/pdf"));
        assert_eq!(sniffed(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]), Ok("image/jpeg"));
        assert_eq!(sniffed(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Ok("image/png"));
        assert_eq!(sniffed(b"RIFF\x10\0\0\0WEBPVP8 "), Ok("image/webp"));
        assert_eq!(sniffed(b"\0\0\0\x18ftypheic\0\0\0\0"), Ok("image/heic"));
        assert_eq!(sniffed(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0]), Ok("application/msword"));
        assert_eq!(
            sniffed("Blood pressure 120/80\r\nTemp 37,2 °C\n".as_bytes()),
            Ok("text/plain; charset=utf-8")
        );
        let docx = zip(&[("[Content_Types].xml", b"<Types/>"), ("word/document.xml", b"<w/>")]);
        assert!(sniffed(&docx).unwrap().ends_with("wordprocessingml.document"));
        let xlsx = zip(&[("[Content_Types].xml", b"<Types/>"), ("xl/workbook.xml", b"<x/>")]);
        assert!(sniffed(&xlsx).unwrap().ends_with("spreadsheetml.sheet"));
        let pptx = zip(&[("[Content_Types].xml", b"<Types/>"), ("ppt/presentation.xml", b"<p/>")]);
        assert!(sniffed(&pptx).unwrap().ends_with("presentationml.presentation"));
        let odt = zip(&[("mimetype", b"application/vnd.oasis.opendocument.text"), ("content.xml", b"<o/>")]);
        assert_eq!(sniffed(&odt), Ok("application/vnd.oasis.opendocument.text"));
    }

    #[test]
    fn text_split_across_reads_is_still_text() {
        // A 3-byte character straddling the 64 KiB read boundary.
        let mut t = "a".repeat(64 * 1024 - 1).into_bytes();
        t.extend_from_slice("€ and more\n".as_bytes());
        assert_eq!(sniffed(&t), Ok("text/plain; charset=utf-8"));
    }

    #[test]
    fn executables_and_unknown_content_are_refused() {
        assert_eq!(sniffed(b"\x7fELF\x02\x01\x01\0"), Err(Refused::Executable));
        // A PE whatever its name says (`scan.pdf`): the name is never looked at.
        assert_eq!(
            sniffed(b"MZ\x90\0\x03\0\0\0This program cannot be run in DOS mode"),
            Err(Refused::Executable)
        );
        assert_eq!(sniffed(b"#!/bin/sh\nrm -rf /\n"), Err(Refused::Executable));
        assert_eq!(sniffed(&[0xCF, 0xFA, 0xED, 0xFE, 7, 0, 0, 1]), Err(Refused::Executable));
        // Binary junk, text with NULs, invalid UTF-8, a zip that is no office document.
        assert_eq!(sniffed(&[1, 2, 3, 0, 5]), Err(Refused::NotAllowed));
        assert_eq!(sniffed(b"abc\0def"), Err(Refused::NotAllowed));
        assert_eq!(sniffed(&[b'a', 0xC3, 0x28]), Err(Refused::NotAllowed));
        assert_eq!(sniffed(&zip(&[("payload.exe", b"MZ")])), Err(Refused::NotAllowed));
        assert_eq!(sniffed(&zip(&[("mimetype", b"application/x-evil")])), Err(Refused::NotAllowed));
        // A zip whose end record points outside the file.
        let mut bad = zip(&[("[Content_Types].xml", b"x"), ("word/a", b"y")]);
        let n = bad.len();
        bad[n - 6..n - 2].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(sniffed(&bad), Err(Refused::NotAllowed));
    }
}
