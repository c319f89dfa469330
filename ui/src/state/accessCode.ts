// Access-code input: 8 characters from an alphabet without 0/O/1/I, shown `ABCD-EFGH`.
// Mirrors `shared/protocol/src/access_code.rs` (which the relay uses to parse).

export const ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
export const CODE_LEN = 8;
/** Characters of an invite link's secret (130 bits; `shared/protocol/src/join_secret.rs`). */
export const INVITE_LEN = 26;

export interface CodeInput {
  /** What the field should show: upper case, dash after the 4th character. */
  display: string;
  /** The accepted characters without dash (at most 8). */
  normalized: string;
  /** 8 valid characters. */
  complete: boolean;
  /** Characters the user typed that are not in the alphabet (e.g. `0`, `O`, `1`, `I`), in order. */
  rejected: string[];
  /** More than 8 valid characters were typed; the extra ones were dropped. */
  overflow: boolean;
}

/** Formats up to 8 normalized characters as `ABCD-EFGH` (dash once there are more than 4). */
export function formatCode(normalized: string): string {
  return normalized.length > 4 ? `${normalized.slice(0, 4)}-${normalized.slice(4)}` : normalized;
}

/**
 * Normalizes what the user typed or pasted: any case, spaces and dashes ignored,
 * characters outside the alphabet are rejected (reported, never mapped: O is not 0).
 * Pasted invite links (`https://relay/#ABCD-EFGH`) are reduced to their fragment.
 */
export function normalizeCodeInput(raw: string): CodeInput {
  let text = raw;
  const hash = text.lastIndexOf("#");
  if (hash >= 0) text = text.slice(hash + 1);
  let normalized = "";
  const rejected: string[] = [];
  let overflow = false;
  for (const ch of text.trim()) {
    if (ch === "-" || ch === " " || ch === "\t") continue;
    const up = ch.toUpperCase();
    if (up.length !== 1 || !ALPHABET.includes(up)) {
      rejected.push(ch);
      continue;
    }
    if (normalized.length === CODE_LEN) {
      overflow = true;
      continue;
    }
    normalized += up;
  }
  return {
    display: formatCode(normalized),
    normalized,
    complete: normalized.length === CODE_LEN,
    rejected,
    overflow,
  };
}

/** Strict parse (as the relay does): the `ABCD-EFGH` form, or null if the input is not exactly a code. */
export function parseAccessCode(raw: string): string | null {
  const input = normalizeCodeInput(raw);
  if (!input.complete || input.rejected.length > 0 || input.overflow) return null;
  return input.display;
}

/**
 * What an invite link's fragment or a join field may carry (as the relay's `JoinSecret::parse`):
 * the `ABCD-EFGH` code, or the 26-character invite secret (upper case, no dashes); null otherwise.
 */
export function parseJoinSecret(raw: string): string | null {
  const code = parseAccessCode(raw);
  if (code) return code;
  let text = raw;
  const hash = text.lastIndexOf("#");
  if (hash >= 0) text = text.slice(hash + 1);
  let secret = "";
  for (const ch of text.trim()) {
    if (ch === "-" || ch === " ") continue;
    const up = ch.toUpperCase();
    if (up.length !== 1 || !ALPHABET.includes(up)) return null;
    secret += up;
  }
  return secret.length === INVITE_LEN ? secret : null;
}

/** Whether a parsed join secret is an invite link's long secret (not a typed code). */
export function isInviteSecret(secret: string): boolean {
  return secret.replace(/-/g, "").length === INVITE_LEN;
}

/** A hint for the user about rejected characters, or null. */
export function codeHint(input: CodeInput): string | null {
  if (input.rejected.length > 0) {
    const lookalikes = input.rejected.filter((c) => "0oO1iI".includes(c));
    if (lookalikes.length > 0) {
      return "Codes never contain 0, O, 1 or I. Check the letters and digits in your code.";
    }
    return "Codes use only letters and digits, like ABCD-EFGH.";
  }
  if (input.overflow) return "A code has 8 characters, like ABCD-EFGH.";
  return null;
}

/** The invite link a host copies: the code or invite secret after `#` stays out of server logs. */
export function inviteLink(relayAddress: string, code: string): string {
  const host = relayAddress.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
  return `https://${host}/#${code}`;
}

/** The deep link the desktop app registers: `clinicmeet://join/CODE[?relay=HOST:PORT&pin=PIN]`
 * (read by `src-tauri/src/launch.rs`); without a relay the app uses the one it is set up with. */
export function deepLink(code: string, relay?: { address: string; pin: string } | null): string {
  const base = `clinicmeet://join/${encodeURIComponent(code)}`;
  if (!relay || !relay.address || !relay.pin) return base;
  const host = relay.address.replace(/^[a-z]+:\/\//i, "").replace(/\/.*$/, "");
  return `${base}?relay=${encodeURIComponent(host)}&pin=${encodeURIComponent(relay.pin)}`;
}
