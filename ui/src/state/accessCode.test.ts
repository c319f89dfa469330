import { describe, expect, it } from "vitest";
import {
  ALPHABET,
  codeHint,
  deepLink,
  inviteLink,
  isInviteSecret,
  normalizeCodeInput,
  parseAccessCode,
  parseJoinSecret,
} from "./accessCode";

describe("access code input", () => {
  it("upper-cases and inserts the dash after four characters", () => {
    expect(normalizeCodeInput("abcd").display).toBe("ABCD");
    expect(normalizeCodeInput("abcde").display).toBe("ABCD-E");
    const full = normalizeCodeInput("abcdefgh");
    expect(full.display).toBe("ABCD-EFGH");
    expect(full.normalized).toBe("ABCDEFGH");
    expect(full.complete).toBe(true);
  });

  it("ignores spaces and dashes wherever they are typed", () => {
    expect(normalizeCodeInput("  ab-cd ef gh ").display).toBe("ABCD-EFGH");
    expect(normalizeCodeInput("A-B-C-D-E").display).toBe("ABCD-E");
  });

  it("rejects the look-alikes 0, O, 1 and I instead of mapping them", () => {
    const input = normalizeCodeInput("ABC0-O1IH");
    expect(input.normalized).toBe("ABCH");
    expect(input.rejected).toEqual(["0", "O", "1", "I"]);
    expect(input.complete).toBe(false);
    expect(codeHint(input)).toMatch(/0, O, 1 or I/);
    expect(normalizeCodeInput("abcdefgi").rejected).toEqual(["i"]);
  });

  it("accepts every alphabet character in any case", () => {
    for (const ch of ALPHABET) {
      expect(normalizeCodeInput(ch.toLowerCase()).normalized).toBe(ch);
    }
    expect(ALPHABET).toHaveLength(32);
    expect(ALPHABET).not.toMatch(/[01OI]/);
  });

  it("stops at eight characters and says so", () => {
    const input = normalizeCodeInput("ABCDEFGHJK");
    expect(input.display).toBe("ABCD-EFGH");
    expect(input.overflow).toBe(true);
    expect(codeHint(input)).toMatch(/8 characters/);
    expect(parseAccessCode("ABCDEFGHJK")).toBeNull();
  });

  it("strict parse accepts only complete clean codes", () => {
    expect(parseAccessCode("wxyz-2345")).toBe("WXYZ-2345");
    expect(parseAccessCode("WXYZ-234")).toBeNull();
    expect(parseAccessCode("WXYZ-234O")).toBeNull();
    expect(parseAccessCode("ÄBCDEFGH")).toBeNull();
    expect(parseAccessCode("")).toBeNull();
  });

  it("takes the code out of a pasted invite link", () => {
    expect(parseAccessCode("https://relay.clinic.example/#KMNP-QRST")).toBe("KMNP-QRST");
  });

  it("builds the invite link with the code in the fragment", () => {
    expect(inviteLink("relay.clinic.example:4433", "ABCD-EFGH")).toBe("https://relay.clinic.example:4433/#ABCD-EFGH");
    expect(inviteLink("https://relay.example/", "ABCD-EFGH")).toBe("https://relay.example/#ABCD-EFGH");
  });

  it("builds the desktop app's deep link as src-tauri parses it", () => {
    const pin = "sha256/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    expect(deepLink("ABCD-EFGH", { address: "relay.clinic.example:4433", pin })).toBe(
      "clinicmeet://join/ABCD-EFGH?relay=relay.clinic.example%3A4433&pin=sha256%2FAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8%3D",
    );
    expect(decodeURIComponent(new URL(deepLink("ABCD-EFGH", { address: "h:9", pin })).searchParams.get("pin") ?? "")).toBe(pin);
    expect(deepLink("ABCD-EFGH", null)).toBe("clinicmeet://join/ABCD-EFGH");
  });

  it("reads an invite link's 26-character secret as well as a code", () => {
    const secret = "ABCDEFGHJKLMNPQRSTUVWXYZ23";
    expect(parseJoinSecret(`https://relay.example/#${secret}`)).toBe(secret);
    expect(parseJoinSecret(secret.toLowerCase())).toBe(secret);
    expect(parseJoinSecret("abcd-efgh")).toBe("ABCD-EFGH");
    expect(isInviteSecret(secret)).toBe(true);
    expect(isInviteSecret("ABCD-EFGH")).toBe(false);
    for (const bad of ["", secret.slice(1), `${secret}A`, `${secret.slice(1)}0`, "ABCDEFGHJ"]) {
      expect(parseJoinSecret(bad)).toBeNull();
    }
  });
});
